import pytest
import torch

from pipeline import models
from pipeline.training.data import TrainingSet
from pipeline.training.step import (Batch, NoiseSchedule, diffusion_loss, draw_batch,
                                    min_snr_weights, step_generator)

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(with_class: bool) -> TrainingSet:
    generator = torch.Generator().manual_seed(0)
    return TrainingSet(
        latents=torch.randn(6, 4, 8, 8, generator=generator),
        time_ids=torch.arange(36, dtype=torch.float32).view(6, 6),
        class_latents=torch.randn(3, 4, 8, 8, generator=generator) if with_class else None,
        class_time_ids=torch.full((3, 6), 64.0) if with_class else None,
        prompts=("a", "b") if with_class else ("a",),
        prompt_embeds=torch.randn(2, 77, 96, generator=generator),
        pooled_embeds=torch.randn(2, 32, generator=generator))


@pytest.fixture
def schedule(settings):
    return NoiseSchedule.from_pipeline(models.load_pipeline(settings))


def test_schedule_matches_the_base_models_scheduler(settings, schedule):
    pipe = models.load_pipeline(settings)
    alphas = pipe.scheduler.alphas_cumprod
    assert schedule.num_timesteps == 1000 and schedule.prediction_type == "epsilon"
    torch.testing.assert_close(schedule.sqrt_alpha ** 2 + schedule.sqrt_sigma ** 2,
                               torch.ones(1000), rtol=0, atol=1e-6)
    t = torch.tensor([0, 499, 999])
    torch.testing.assert_close(schedule.snr(t), (alphas / (1 - alphas))[t].float(), rtol=1e-5, atol=0)


def test_a_scheduler_without_betas_is_refused():
    from types import SimpleNamespace

    from diffusers import EDMEulerScheduler

    edm = SimpleNamespace(scheduler=EDMEulerScheduler(), unet=SimpleNamespace(device="cpu"))
    with pytest.raises(ValueError, match="EDMEulerScheduler has no beta schedule"):
        NoiseSchedule.from_pipeline(edm)


def test_step_generator_depends_only_on_seed_step_and_process():
    def draw(*args):
        return torch.rand(4, generator=step_generator(*args))

    assert torch.equal(draw(0, 5, 0), draw(0, 5, 0))
    assert not torch.equal(draw(0, 5, 0), draw(0, 6, 0))
    assert not torch.equal(draw(0, 5, 0), draw(1, 5, 0))
    assert not torch.equal(draw(0, 5, 0), draw(0, 5, 1))


def test_batch_with_prior_preservation_stacks_class_rows_after_instance_rows(schedule):
    batch = draw_batch(_data(True), schedule, step_generator(0, 3), batch_size=2, offset_noise=0)
    assert batch.latents.shape == batch.noise.shape == (4, 4, 8, 8)
    assert batch.instances == 2 and batch.prompt_index.tolist() == [0, 0, 1, 1]
    assert batch.time_ids[2:].tolist() == [[64.0] * 6] * 2
    assert all(0 <= t < 1000 for t in batch.timesteps.tolist())
    again = draw_batch(_data(True), schedule, step_generator(0, 3), batch_size=2, offset_noise=0)
    assert torch.equal(batch.noise, again.noise) and torch.equal(batch.timesteps, again.timesteps)


def test_offset_noise_shifts_each_channel_by_a_constant(schedule):
    plain = draw_batch(_data(False), schedule, step_generator(0, 1), 1, offset_noise=0)
    offset = draw_batch(_data(False), schedule, step_generator(0, 1), 1, offset_noise=0.1)
    shift = offset.noise - plain.noise
    assert shift.abs().sum() > 0
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))


def test_min_snr_weights():
    snr = torch.tensor([0.5, 5.0, 50.0])
    torch.testing.assert_close(min_snr_weights(snr, 5.0, "epsilon"), torch.tensor([1.0, 1.0, 0.1]))
    torch.testing.assert_close(min_snr_weights(snr, 5.0, "v_prediction"),
                               torch.tensor([0.5 / 1.5, 5 / 6, 5 / 51]))


class ZeroUNet:
    """Predicts zeros and records what it was given, so the loss can be checked by hand."""

    def __call__(self, noisy, t, encoder_hidden_states, added_cond_kwargs, return_dict):
        self.seen = (noisy, t, encoder_hidden_states, added_cond_kwargs)
        return (torch.zeros_like(noisy),)


@pytest.mark.parametrize("gamma", [0.0, 5.0])
def test_loss_is_min_snr_weighted_mse_plus_weighted_prior(schedule, gamma):
    data = _data(True)
    batch = draw_batch(data, schedule, step_generator(0, 2), batch_size=2, offset_noise=0)
    unet = ZeroUNet()
    loss = diffusion_loss(unet, batch, data.prompt_embeds, data.pooled_embeds, schedule, gamma, 0.5)
    per_sample = batch.noise.pow(2).mean(dim=(1, 2, 3))  # target = noise, prediction = 0
    if gamma:
        snr = schedule.snr(batch.timesteps)
        per_sample = per_sample * torch.minimum(snr, torch.tensor(gamma)) / snr
    torch.testing.assert_close(loss, per_sample[:2].mean() + 0.5 * per_sample[2:].mean())
    noisy, t, embeds, added = unet.seen
    a = schedule.sqrt_alpha[t].view(-1, 1, 1, 1)
    s = schedule.sqrt_sigma[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(noisy, a * batch.latents + s * batch.noise)
    assert torch.equal(embeds[2], data.prompt_embeds[1]) and torch.equal(embeds[0], data.prompt_embeds[0])
    assert torch.equal(added["time_ids"], batch.time_ids)
    assert torch.equal(added["text_embeds"][3], data.pooled_embeds[1])


def test_v_prediction_target(schedule):
    v_schedule = NoiseSchedule(schedule.sqrt_alpha, schedule.sqrt_sigma, "v_prediction")
    latents = torch.randn(1, 4, 8, 8)
    noise = torch.randn(1, 4, 8, 8)
    t = torch.tensor([300])
    batch = Batch(latents, noise, t, torch.zeros(1, 6), torch.zeros(1, dtype=torch.long), 1)
    embeds, pooled = torch.zeros(1, 77, 96), torch.zeros(1, 32)
    loss = diffusion_loss(ZeroUNet(), batch, embeds, pooled, v_schedule, 0.0, 1.0)
    target = v_schedule.sqrt_alpha[300] * noise - v_schedule.sqrt_sigma[300] * latents
    torch.testing.assert_close(loss, target.pow(2).mean())
