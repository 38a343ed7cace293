"""The mathematics of one DreamBooth step: random draws, noising, and the min-SNR-weighted loss.

Every random number of step k comes from a CPU generator seeded with (seed, k, process), so a
step draws the same batch, noise and timesteps whether the run is whole or split into chunks,
on any device. Reference for the formulas: diffusers' train_dreambooth_lora_sdxl.py and
"Efficient Diffusion Training via Min-SNR Weighting Strategy" (Hang et al., 2023).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .data import TrainingSet


@dataclass(frozen=True)
class NoiseSchedule:
    """The forward process of the base model's scheduler, as tables on the training device."""

    sqrt_alpha: Any  # sqrt(alphas_cumprod[t])
    sqrt_sigma: Any  # sqrt(1 - alphas_cumprod[t])
    prediction_type: str  # "epsilon" (SDXL base) or "v_prediction"

    @classmethod
    def from_pipeline(cls, pipe) -> "NoiseSchedule":
        from diffusers import DDPMScheduler

        if "beta_schedule" not in pipe.scheduler.config:
            # DDPMScheduler would quietly fill in a linear schedule the model never saw.
            raise ValueError(f"the base model's {type(pipe.scheduler).__name__} has no beta "
                             "schedule (an EDM model such as Playground v2.5?); training "
                             "supports DDPM-style models like SDXL base")
        scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        alphas, device = scheduler.alphas_cumprod.double(), pipe.unet.device
        prediction = scheduler.config.prediction_type
        if prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"the base model predicts {prediction!r}; training supports "
                             "epsilon and v_prediction models (SDXL base predicts epsilon)")
        return cls(alphas.sqrt().float().to(device), (1 - alphas).sqrt().float().to(device),
                   prediction)

    @property
    def num_timesteps(self) -> int:
        return self.sqrt_alpha.shape[0]

    def snr(self, timesteps):
        """Signal-to-noise ratio alpha_t / sigma_t squared, per timestep."""
        return (self.sqrt_alpha[timesteps] / self.sqrt_sigma[timesteps]) ** 2


@dataclass
class Batch:
    """One step's inputs: instance rows first, then as many class rows (prior preservation)."""

    latents: Any
    noise: Any
    timesteps: Any
    time_ids: Any
    prompt_index: Any  # 0 = instance prompt, 1 = class prompt, per row
    instances: int  # how many leading rows are the character's own crops


def step_generator(seed: int, step: int, process: int = 0):
    """The CPU generator all of step `step`'s random draws come from."""
    import torch

    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + process)


def draw_batch(data: TrainingSet, schedule: NoiseSchedule, generator, batch_size: int,
               offset_noise: float) -> Batch:
    """Pick crops (and class images), noise and timesteps for one step, always in this order."""
    import torch

    device = data.latents.device
    rows = torch.randint(data.latents.shape[0], (batch_size,), generator=generator)
    latents, time_ids = [data.latents[rows.to(device)]], [data.time_ids[rows.to(device)]]
    if data.class_latents is not None:
        class_rows = torch.randint(data.class_latents.shape[0], (batch_size,), generator=generator)
        latents.append(data.class_latents[class_rows.to(device)])
        time_ids.append(data.class_time_ids[class_rows.to(device)])
    latents, time_ids = torch.cat(latents), torch.cat(time_ids)
    noise = torch.randn(latents.shape, generator=generator)
    if offset_noise:
        noise += offset_noise * torch.randn((*latents.shape[:2], 1, 1), generator=generator)
    timesteps = torch.randint(schedule.num_timesteps, (latents.shape[0],), generator=generator)
    prompt_index = (torch.arange(latents.shape[0]) >= batch_size).long()
    return Batch(latents=latents, noise=noise.to(device), timesteps=timesteps.to(device),
                 time_ids=time_ids, prompt_index=prompt_index.to(device), instances=batch_size)


def diffusion_loss(unet, batch: Batch, prompt_embeds, pooled_embeds, schedule: NoiseSchedule,
                   snr_gamma: float, prior_weight: float):
    """Noise-prediction MSE, min-SNR-gamma weighted per sample; instance + weighted prior part."""
    import torch.nn.functional as F

    t = batch.timesteps
    a = schedule.sqrt_alpha[t].view(-1, 1, 1, 1)
    s = schedule.sqrt_sigma[t].view(-1, 1, 1, 1)
    noisy = a * batch.latents + s * batch.noise
    if schedule.prediction_type == "epsilon":
        target = batch.noise
    else:
        target = a * batch.noise - s * batch.latents  # v-prediction
    prediction = unet(noisy, t, encoder_hidden_states=prompt_embeds[batch.prompt_index],
                      added_cond_kwargs={"text_embeds": pooled_embeds[batch.prompt_index],
                                         "time_ids": batch.time_ids},
                      return_dict=False)[0]
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if snr_gamma:
        per_sample = per_sample * min_snr_weights(schedule.snr(t), snr_gamma, schedule.prediction_type)
    loss = per_sample[:batch.instances].mean()
    if per_sample.shape[0] > batch.instances:
        loss = loss + prior_weight * per_sample[batch.instances:].mean()
    return loss


def min_snr_weights(snr, gamma: float, prediction_type: str):
    """min(SNR, gamma) / SNR for noise prediction; / (SNR + 1) for v-prediction."""
    import torch

    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    return clipped / (snr + 1 if prediction_type == "v_prediction" else snr)

