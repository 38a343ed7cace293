"""The model card (README.md) of a character's adapter repo: Hub metadata and how to use it.

The card says what the adapter draws (trigger token and kind), what it was trained from and
with, and how to load it in diffusers, ComfyUI and AUTOMATIC1111. It never embeds or links a
photo of the person; the validation image appears only when the caller includes it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..adapter_files import ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, VALIDATION_IMAGE
from ..characters import Character

TAGS = ("text-to-image", "stable-diffusion-xl", "lora", "diffusers", "template:sd-lora",
        "taleweaver")
SDXL_LICENSED = "stabilityai/stable-diffusion-xl-base-1.0"  # released under openrail++


def hub_model_id(source: str) -> str | None:
    """`source` if it names a Hub model ("owner/name"), None for a local folder."""
    source = source.strip()
    if source.startswith((".", "/", "~")) or Path(source).expanduser().exists():
        return None
    parts = source.split("/")
    return source if len(parts) == 2 and all(parts) else None


def render_model_card(character: Character, repo_id: str, base_model: str,
                      train_config: Mapping[str, Any], files: Sequence[str]) -> str:
    """README.md for the repo: YAML metadata (base model, tags, trigger) and usage notes.

    `files` are the repo's files besides the card; `train_config` is what train_config.json
    holds (train_config.TrainingRecord.to_dict(); possibly empty) and is shown as it is.
    """
    from huggingface_hub import ModelCardData

    hub_base = hub_model_id(base_model)
    prompt = _instance_prompt(character, train_config)
    metadata: dict[str, Any] = {}
    if hub_base:
        metadata["base_model"] = hub_base
        if hub_base == SDXL_LICENSED:
            metadata["license"] = "openrail++"
    metadata.update(library_name="diffusers", tags=list(TAGS), instance_prompt=prompt)
    if VALIDATION_IMAGE in files:
        text = train_config.get("validation_prompt")
        metadata["widget"] = [{"text": text if isinstance(text, str) and text else prompt,
                               "output": {"url": VALIDATION_IMAGE}}]
    yaml = ModelCardData(**metadata).to_yaml()
    sections = [
        _intro(character, repo_id, base_model, hub_base),
        _diffusers_usage(character, repo_id, hub_base),
        _kohya_usage(character, repo_id, files),
        _training(train_config),
        _files(files),
    ]
    return f"---\n{yaml}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n"


def _instance_prompt(character: Character, train_config: Mapping[str, Any]) -> str:
    prompt = train_config.get("instance_prompt")
    if isinstance(prompt, str) and character.trigger in prompt:
        return prompt
    return character.token_phrase


def _intro(character: Character, repo_id: str, base_model: str, hub_base: str | None) -> str:
    base = f"[{hub_base}](https://huggingface.co/{hub_base})" if hub_base else (
        f"a local copy of an SDXL model (`{Path(base_model).name}`)")
    return (
        f"# {character.name}: a Taleweaver character adapter\n\n"
        f"A DreamBooth-LoRA adapter for {base} that draws **{character.name}** ({character.kind}), "
        "trained by Taleweaver from family photos. It lives in a private "
        "repo: keep it private, since it can draw a real person. No photo of the person is in "
        "this repo.\n\n"
        f"- trigger token: `{character.trigger}`\n"
        f"- kind: `{character.kind}`\n"
        f"- write **`{character.token_phrase}`** in the prompt to draw {character.name}, e.g. "
        f"`a watercolor illustration of {character.token_phrase} reading under a tree`"
    )


def _diffusers_usage(character: Character, repo_id: str, hub_base: str | None) -> str:
    base = hub_base or SDXL_LICENSED
    return (
        "## Use it with diffusers\n\n"
        "The repo is private: log in first (`hf auth login`) or pass `token=` to "
        "`load_lora_weights`.\n\n"
        "```python\n"
        "import torch\n"
        "from diffusers import StableDiffusionXLPipeline\n\n"
        "pipe = StableDiffusionXLPipeline.from_pretrained(\n"
        f'    "{base}", torch_dtype=torch.float16).to("cuda")\n'
        f'pipe.load_lora_weights("{repo_id}", weight_name="{ADAPTER_WEIGHTS}",\n'
        f'                       adapter_name="{character.slug.replace("-", "_")}")\n'
        f'image = pipe("a watercolor illustration of {character.token_phrase} reading under a tree",\n'
        "             num_inference_steps=30).images[0]\n"
        "```"
    )


def _kohya_usage(character: Character, repo_id: str, files: Sequence[str]) -> str:
    if KOHYA_WEIGHTS not in files:
        return ("## ComfyUI and AUTOMATIC1111\n\n"
                f"This repo has no kohya-format file (`{KOHYA_WEIGHTS}`); recent ComfyUI and "
                f"AUTOMATIC1111 versions can often read `{ADAPTER_WEIGHTS}` directly.")
    name = f"taleweaver-{character.slug}"
    return (
        "## ComfyUI and AUTOMATIC1111\n\n"
        f"Use `{KOHYA_WEIGHTS}` (kohya key names). Download it and give it a recognisable name:\n\n"
        "```bash\n"
        f"hf download {repo_id} {KOHYA_WEIGHTS} --local-dir .\n"
        f"mv {KOHYA_WEIGHTS} {name}.safetensors\n"
        "```\n\n"
        f"- **ComfyUI**: put `{name}.safetensors` in `ComfyUI/models/loras/`, add a *Load LoRA* "
        "node after *Load Checkpoint* (an SDXL checkpoint): its MODEL output goes to the "
        "KSampler and its CLIP output to the *CLIP Text Encode* nodes; strength about 0.8. "
        f"Write `{character.token_phrase}` in the positive prompt.\n"
        f"- **AUTOMATIC1111 / Forge**: put it in `models/Lora/` and write "
        f"`<lora:{name}:0.8> {character.token_phrase}` in the prompt, with an SDXL checkpoint."
    )


def _training(train_config: Mapping[str, Any]) -> str:
    if not train_config:
        return ""
    rows = [f"| {key} | {_cell(value)} |" for key, value in train_config.items()]
    return ("## Training\n\n"
            f"The settings used, as saved in `{TRAIN_CONFIG}`:\n\n"
            "| setting | value |\n|---|---|\n" + "\n".join(rows))


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "`" + text.replace("|", "\\|").replace("`", "'").replace("\n", " ") + "`"


def _files(files: Sequence[str]) -> str:
    notes = {
        ADAPTER_WEIGHTS: "the adapter in diffusers format (`load_lora_weights`)",
        KOHYA_WEIGHTS: "the same adapter with kohya key names (ComfyUI, AUTOMATIC1111)",
        TRAIN_CONFIG: "how it was trained: base model, resolution, trigger, prompts and settings",
        VALIDATION_IMAGE: "a sample image drawn after training (included because you chose to)",
    }
    lines = [f"- `{name}`: {notes[name]}" for name in files]
    return "## Files\n\n" + "\n".join(lines)
