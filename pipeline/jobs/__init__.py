"""Training on Hugging Face Jobs, in the user's own account: the hardware and what it costs
(`flavors`), the private bucket the photos travel through (`bucket`), the lines a job prints
(`lines`), the job as the app sees it (`remote`) and the job's own side (`worker`)."""
