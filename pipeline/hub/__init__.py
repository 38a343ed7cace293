"""The Hugging Face Hub: private adapter repos (repos), the one place Hub calls go through
(calls), whose a token is (tokens) and the model card."""
