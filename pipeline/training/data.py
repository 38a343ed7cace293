"""What a training step reads, computed once per chunk: latents, SDXL time ids, prompt embeddings.

The VAE encodes every crop (and its mirror image) and every class image once; the frozen text
encoders encode the two fixed prompts once. After that a step touches only the UNet.

SDXL is conditioned on six "time ids" per image: the original size (h, w), the top-left corner
of the crop (top, left) and the target size. A crop is trained as if the whole photo had been
resized so that the crop becomes the training resolution, so the corner is the crop box's
top-left scaled by resolution / crop side (for a mirrored crop, measured from the other edge).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from PIL import Image, ImageOps

from ..characters import Character, Crop


@dataclass
class TrainingSet:
    """Cached tensors on the training device (float32)."""

    latents: Any  # (N, 4, h, w): the crops, then their mirror images
    time_ids: Any  # (N, 6)
    class_latents: Optional[Any]  # (M, 4, h, w): base-model images of the kind, or None
    class_time_ids: Optional[Any]  # (M, 6)
    prompts: tuple[str, ...]  # the instance prompt, then the class prompt if any
    prompt_embeds: Optional[Any]  # (P, 77, D), None when the text encoders train
    pooled_embeds: Optional[Any]  # (P, D2)


def instance_prompt(character: Character, describe: bool) -> str:
    """"a photo of <trigger> <kind>", with the look description when asked and present."""
    prompt = f"a photo of {character.token_phrase}"
    return f"{prompt}, {character.description}" if describe and character.description else prompt


def class_prompt(kind: str) -> str:
    """"a photo of a girl": what the base model draws for the class images."""
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"a photo of {article} {kind}"


def crop_time_ids(crop: Crop, resolution: int, flipped: bool) -> tuple[int, ...]:
    """SDXL's (orig h, orig w, crop top, crop left, target h, target w) for one training crop."""
    height, width = crop.original_size
    left, top, right, bottom = crop.crop_box
    scale_y, scale_x = resolution / (bottom - top), resolution / (right - left)
    corner_x = width - right if flipped else left
    return (height, width, max(0, round(top * scale_y)), max(0, round(corner_x * scale_x)),
            resolution, resolution)


def prepare_training_set(pipe, crops: Sequence[tuple[Image.Image, Crop]],
                         class_images: Sequence[Image.Image], prompts: Sequence[str],
                         resolution: int, *, flip: bool, cache_text: bool) -> TrainingSet:
    """Encode crops (and mirrors), class images and prompts once, on the pipeline's device."""
    import torch

    images = [image for image, _ in crops]
    ids = [crop_time_ids(crop, resolution, False) for _, crop in crops]
    if flip:
        images += [ImageOps.mirror(image) for image, _ in crops]
        ids += [crop_time_ids(crop, resolution, True) for _, crop in crops]
    square = (resolution, resolution, 0, 0, resolution, resolution)
    device = pipe.unet.device
    latents = encode_images(pipe, images, resolution)
    class_latents = encode_images(pipe, class_images, resolution) if class_images else None
    with torch.no_grad():
        embeds, pooled = encode_prompts(pipe, prompts) if cache_text else (None, None)
    return TrainingSet(
        latents=latents,
        time_ids=torch.tensor(ids, dtype=torch.float32, device=device),
        class_latents=class_latents,
        class_time_ids=(torch.tensor([square] * len(class_images), dtype=torch.float32,
                                     device=device) if class_images else None),
        prompts=tuple(prompts),
        prompt_embeds=embeds,
        pooled_embeds=pooled,
    )


def encode_images(pipe, images: Sequence[Image.Image], resolution: int):
    """VAE latents (the distribution's mode, scaled) of square RGB images, one at a time."""
    import numpy as np
    import torch

    vae = pipe.vae
    out = []
    for image in images:
        image = image.convert("RGB")
        if image.size != (resolution, resolution):
            image = image.resize((resolution, resolution), Image.LANCZOS)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
        pixels = pixels.permute(2, 0, 1)[None].to(vae.device, vae.dtype)
        with torch.no_grad():
            latent = vae.encode(pixels).latent_dist.mode()
        out.append(latent.float() * vae.config.scaling_factor)
    return torch.cat(out)


def encode_prompts(pipe, prompts: Sequence[str]):
    """SDXL prompt embeddings (both encoders, penultimate layer) and pooled embeddings, float32.

    Differentiable: the text encoders' LoRA layers train through it when asked.
    """
    embeds, _, pooled, _ = pipe.encode_prompt(list(prompts), device=pipe.unet.device,
                                              do_classifier_free_guidance=False)
    return embeds.float(), pooled.float()
