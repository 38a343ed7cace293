import dataclasses

import pytest
import torch
from conftest import make_crops
from PIL import Image, ImageOps

from pipeline import models
from pipeline.characters import Crop
from pipeline.training.data import (class_prompt, crop_time_ids, encode_images, encode_prompts,
                                    instance_prompt, prepare_training_set)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_prompts(character):
    assert instance_prompt(character, describe=False) == "a photo of ohwx girl"
    assert instance_prompt(character, describe=True) == "a photo of ohwx girl, curly red hair"
    assert instance_prompt(dataclasses.replace(character, description=""), True) == "a photo of ohwx girl"
    assert class_prompt("girl") == "a photo of a girl"
    assert class_prompt("owl") == "a photo of an owl"


def test_time_ids_place_the_crop_in_the_resized_photo():
    crop = Crop("crops/01.png", original_size=(480, 640), crop_box=(100, 50, 300, 250))
    # The 200-px crop becomes 64 px: the photo is scaled by 0.32.
    assert crop_time_ids(crop, 64, flipped=False) == (480, 640, 16, 32, 64, 64)
    # Mirrored, the crop's left edge is (640 - 300) px from the photo's left: 108.8 -> 109.
    assert crop_time_ids(crop, 64, flipped=True) == (480, 640, 16, 109, 64, 64)
    assert crop_time_ids(crop, 1024, flipped=False) == (480, 640, 256, 512, 1024, 1024)


def test_time_ids_of_a_padded_crop_never_go_negative():
    crop = Crop("crops/01.png", original_size=(400, 300), crop_box=(-20, -10, 280, 290))
    assert crop_time_ids(crop, 64, flipped=False)[2:4] == (0, 0)


def test_training_set_caches_crops_mirrors_class_images_and_prompts(settings):
    pipe = models.load_pipeline(settings)
    crops = make_crops(3, 64, seed=4)
    class_images = [image for image, _ in make_crops(2, 64, seed=5)]
    prompts = ["a photo of ohwx girl", "a photo of a girl"]
    data = prepare_training_set(pipe, crops, class_images, prompts, 64, flip=True, cache_text=True)
    assert data.latents.shape == (6, 4, 8, 8) and data.latents.dtype == torch.float32
    assert data.time_ids.tolist()[0] == list(crop_time_ids(crops[0][1], 64, False))
    assert data.time_ids.tolist()[3] == list(crop_time_ids(crops[0][1], 64, True))
    mirrored = encode_images(pipe, [ImageOps.mirror(crops[1][0])], 64)
    assert torch.equal(data.latents[4], mirrored[0])
    assert not torch.equal(data.latents[1], data.latents[4])
    assert data.class_latents.shape == (2, 4, 8, 8)
    assert data.class_time_ids.tolist() == [[64, 64, 0, 0, 64, 64]] * 2
    embeds, pooled = encode_prompts(pipe, prompts)
    assert torch.equal(data.prompt_embeds, embeds) and torch.equal(data.pooled_embeds, pooled)
    assert data.prompt_embeds.shape[:2] == (2, 77) and pooled.shape[0] == 2
    assert not data.latents.requires_grad and not data.prompt_embeds.requires_grad


def test_no_flip_no_class_images_no_text_cache(settings):
    pipe = models.load_pipeline(settings)
    data = prepare_training_set(pipe, make_crops(2, 64, seed=4), [], ["a photo of ohwx girl"], 64,
                                flip=False, cache_text=False)
    assert data.latents.shape[0] == 2
    assert data.class_latents is None and data.prompt_embeds is None
    assert data.prompts == ("a photo of ohwx girl",)


def test_latents_are_scaled_vae_modes_at_the_training_size(settings):
    pipe = models.load_pipeline(settings)
    image = make_crops(1, 128, seed=6)[0][0]  # larger than the training size: resized first
    latents = encode_images(pipe, [image], 64)
    assert latents.shape == (1, 4, 8, 8)
    again = encode_images(pipe, [image.resize((64, 64), Image.LANCZOS)], 64)
    assert torch.equal(latents, again) and not latents.requires_grad
