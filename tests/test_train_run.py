import pytest
import torch
from conftest import make_crops

from pipeline import models
from pipeline.hardware import Hardware
from pipeline.training.config import TrainConfig
from pipeline.training.lora_files import lora_state_dict
from pipeline.training.run import (TrainingError, make_accelerator, make_optimizer, open_run,
                                   uses_gradient_checkpointing, warmup_then_constant)

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = Hardware(kind="cpu", device="cpu", dtype="float32", name="CPU")
PROMPTS = ["a photo of ohwx girl", "a photo of a girl"]


def _run(settings, config, class_images=(), accelerator=None):
    pipe = models.load_pipeline(settings, CPU)
    return open_run(pipe, accelerator or make_accelerator(CPU), CPU, config,
                    make_crops(3, 64, seed=1), list(class_images),
                    PROMPTS[:2 if class_images else 1], 64)


def test_loss_on_a_fixed_batch_goes_down(settings):
    config = TrainConfig(rank=8, learning_rate=3e-3, warmup_steps=0, prior_preservation=False)
    with _run(settings, config) as run:
        batch = run.batch(0)
        losses = []
        for _ in range(30):
            loss = run.loss(batch)
            run.backward(loss)
            run.update()
            losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses[::5]
    assert all(b <= a * 1.05 for a, b in zip(losses[::10], losses[10::10])), losses[::10]


def test_stopping_and_restoring_continues_exactly(settings):
    config = TrainConfig(rank=4, alpha=8, warmup_steps=3, prior_preservation=True,
                         offset_noise=0.05, train_text_encoder=True)
    class_images = [image for image, _ in make_crops(2, 64, seed=9)]
    with _run(settings, config, class_images) as run:
        for step in range(6):
            run.step(step)
        whole = lora_state_dict(run.modules)
    with _run(settings, config, class_images) as run:
        for step in range(3):
            run.step(step)
        state = run.state(3, key={"run": 1})
    with _run(settings, config, class_images) as run:
        run.restore(state)
        for step in range(3, 6):
            run.step(step)
        resumed = lora_state_dict(run.modules)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_eight_bit_adamw_trains_and_resumes_exactly_on_the_cpu(settings):
    import bitsandbytes

    # Rank 64 makes the larger LoRA matrices big enough (>= 4096 values) for 8-bit state.
    config = TrainConfig(rank=64, optimizer="adamw8bit", warmup_steps=0, prior_preservation=False)
    with _run(settings, config) as run:
        assert isinstance(run.optimizer.optimizer, bitsandbytes.optim.AdamW8bit)
        losses = [run.step(step).item() for step in range(4)]
        whole = lora_state_dict(run.modules)
        eight_bit = [s["state1"].dtype for s in run.optimizer.optimizer.state.values()]
    assert torch.uint8 in eight_bit and all(map(torch.isfinite, map(torch.tensor, losses)))
    with _run(settings, config) as run:
        for step in range(2):
            run.step(step)
        state = run.state(2, key={})
    with _run(settings, config) as run:
        run.restore(state)
        for step in range(2, 4):
            run.step(step)
        assert all(torch.equal(whole[k], v) for k, v in lora_state_dict(run.modules).items())


def loss_scaling_accelerator():
    """The CPU Accelerator with a GradScaler, as accelerate has one for fp16 on CUDA (none on the
    CPU): backward scales the loss, the optimizer unscales, checks for overflow and grows the
    scale. It starts so low that the scaled gradients lose precision (float32 denormals), so
    the steps depend on the scale, which doubles every step."""
    accelerator = make_accelerator(CPU)
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** -120, growth_interval=1)
    return accelerator


def test_fp16_loss_scaling_state_resumes_exactly(settings):
    # Clipping is off: accelerate unscales before clipping only when it runs fp16 itself.
    config = TrainConfig(rank=4, warmup_steps=0, prior_preservation=False, max_grad_norm=0)
    with _run(settings, config, accelerator=loss_scaling_accelerator()) as run:
        for step in range(6):
            run.step(step)
        whole, scaler = lora_state_dict(run.modules), run.accelerator.scaler.state_dict()
    assert scaler["scale"] == 2.0 ** -114
    with _run(settings, config, accelerator=loss_scaling_accelerator()) as run:
        for step in range(3):
            run.step(step)
        state = run.state(3, key={})
    with _run(settings, config, accelerator=loss_scaling_accelerator()) as run:
        run.restore(state)
        for step in range(3, 6):
            run.step(step)
        assert run.accelerator.scaler.state_dict() == scaler
        assert all(torch.equal(whole[k], v) for k, v in lora_state_dict(run.modules).items())


def test_gradient_checkpointing_gives_the_same_steps(settings):
    states = []
    for checkpointing in ("off", "on"):
        config = TrainConfig(rank=4, prior_preservation=False, gradient_checkpointing=checkpointing)
        with _run(settings, config) as run:
            assert run.pipe.unet.is_gradient_checkpointing == (checkpointing == "on")
            for step in range(3):
                run.step(step)
            states.append(lora_state_dict(run.modules))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_optimizer_choice():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert type(make_optimizer(params, TrainConfig(), CPU)) is torch.optim.AdamW
    gpu = Hardware(kind="cuda", device="cuda", dtype="bfloat16", name="H100")
    assert type(make_optimizer(params, TrainConfig(), gpu)).__name__ == "AdamW8bit"
    assert type(make_optimizer(params, TrainConfig(optimizer="adamw"), gpu)) is torch.optim.AdamW
    optimizer = make_optimizer(params, TrainConfig(learning_rate=3e-4, weight_decay=0.01), CPU)
    assert optimizer.defaults["lr"] == 3e-4 and optimizer.defaults["weight_decay"] == 0.01


def test_warm_up_then_constant():
    factor = warmup_then_constant(4)
    assert [factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_then_constant(0)(0) == 1.0


def test_gradient_checkpointing_choice():
    assert not uses_gradient_checkpointing(TrainConfig(), CPU)
    assert uses_gradient_checkpointing(TrainConfig(gradient_checkpointing="on"), CPU)
    zerogpu = Hardware(kind="zerogpu", device="cuda", dtype="bfloat16", name="ZeroGPU")
    assert not uses_gradient_checkpointing(TrainConfig(), zerogpu)


def test_one_precision_per_process():
    accelerator = make_accelerator(CPU)
    assert accelerator.mixed_precision == "no" and accelerator.device.type == "cpu"
    assert make_accelerator(CPU).mixed_precision == "no"
    with pytest.raises(TrainingError, match="needs a new process"):
        make_accelerator(Hardware(kind="cpu", device="cpu", dtype="bfloat16", name="CPU"))


def test_float16_on_the_cpu_is_a_clear_error():
    with pytest.raises(TrainingError, match="float16 needs a CUDA GPU.*TALEWEAVER_DTYPE=float32"):
        make_accelerator(Hardware(kind="cpu", device="cpu", dtype="float16", name="CPU"))
