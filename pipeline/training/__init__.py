"""DreamBooth-LoRA training: the config and presets, data, the step, the resumable run,
checkpoints, adapter files, class images and the GPU-time estimate."""
