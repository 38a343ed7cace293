"""pipeline/model_card.py: the README.md of a character's adapter repo (metadata, usage in
diffusers, ComfyUI and AUTOMATIC1111, the training settings; never a photo)."""
import dataclasses

import yaml
from fake_hub import REPO, SDXL, adapter_of, push

from pipeline.adapter_files import (ADAPTER_WEIGHTS, KOHYA_WEIGHTS, MODEL_CARD, TRAIN_CONFIG,
                                    VALIDATION_IMAGE)
from pipeline.hub.model_card import render_model_card


def split_card(text):
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_model_card_metadata_and_usage(settings, mia, fake, waits, online):
    push(settings, fake, waits, mia)
    meta, body = split_card(fake.repos[REPO]["files"][MODEL_CARD].decode())

    assert meta["base_model"] == SDXL and meta["license"] == "openrail++"
    assert {"lora", "diffusers", "text-to-image", "stable-diffusion-xl",
            "template:sd-lora"} <= set(meta["tags"])
    assert meta["instance_prompt"] == "a photo of ohwx girl" and "widget" not in meta
    assert "trigger token: `ohwx`" in body and "kind: `girl`" in body
    assert (f'pipe.load_lora_weights("{REPO}", weight_name="{ADAPTER_WEIGHTS}"' in body)
    assert f"hf download {REPO} {KOHYA_WEIGHTS}" in body
    assert "ComfyUI/models/loras/" in body and "<lora:taleweaver-mia:0.8> ohwx girl" in body
    assert "its MODEL output goes to the KSampler and its CLIP output to the" in body
    assert "| rank | `16` |" in body and "| learning_rate | `0.0001` |" in body
    assert "crops" not in body and "01.png" not in body and VALIDATION_IMAGE not in body


def test_model_card_without_config_or_kohya_and_with_a_local_base_model(mia, tiny_model_dir):
    card = render_model_card(mia, REPO, str(tiny_model_dir), {}, [ADAPTER_WEIGHTS])
    meta, body = split_card(card)

    assert "base_model" not in meta and "license" not in meta
    assert meta["instance_prompt"] == "ohwx girl"
    assert "## Training" not in body and f"no kohya-format file (`{KOHYA_WEIGHTS}`)" in body
    assert SDXL in body  # the diffusers example still loads real SDXL


def test_damaged_training_config_still_gives_a_card(settings, mia, fake, waits, online):
    (adapter_of(settings, mia) / TRAIN_CONFIG).write_text("{not json")
    result = push(dataclasses.replace(settings, base_model=SDXL), fake, waits, mia,
                  namespace="alice")

    meta, body = split_card(fake.repos[REPO]["files"][MODEL_CARD].decode())
    assert result.status == "pushed" and meta["base_model"] == SDXL  # settings' base model
    assert "## Training" not in body
