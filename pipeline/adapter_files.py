"""The names of the files in a character's folder that training writes and the Hub publishes.

    <character>/adapter/          ADAPTER_DIR, shaped like the character's Hub repo:
        pytorch_lora_weights.safetensors   diffusers format (load_lora_weights)
        kohya_lora.safetensors             kohya/A1111/ComfyUI key names
        train_config.json                  how it was trained (training.config.TrainingRecord)
        validation.png                     a picture drawn by the adapter, when asked for
        README.md                          the model card (written before a push)
        hub.json                           where it was pushed to or downloaded from
    <character>/checkpoint/       CHECKPOINT_DIR: training state between chunks
"""
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"
KOHYA_WEIGHTS = "kohya_lora.safetensors"
TRAIN_CONFIG = "train_config.json"
VALIDATION_IMAGE = "validation.png"
MODEL_CARD = "README.md"
HUB_RECORD = "hub.json"
CHECKPOINT_DIR = "checkpoint"
