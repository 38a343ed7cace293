"""One training run in memory: LoRA layers on the pipeline, cached data, optimizer, one `step()`.

accelerate's Accelerator decides placement and precision: autocast (bf16/fp16 on a GPU, with the
LoRA weights kept in float32), fp16 loss scaling, and under `accelerate launch` the process group,
over which the LoRA gradients are averaged after each backward pass (a plain all-reduce of a few
megabytes; the shared UNet itself is never wrapped, so it is left exactly as found).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from PIL import Image

from ..characters import Crop
from ..hardware import Hardware
from .checkpoint import TrainingState
from .config import TrainConfig
from .data import TrainingSet, encode_prompts, prepare_training_set
from .lora_files import load_lora_state, lora_layers, lora_state_dict, trainable_parameters
from .step import Batch, NoiseSchedule, diffusion_loss, draw_batch, step_generator

# Below this much GPU memory, "auto" turns gradient checkpointing on. A rough figure, not
# measured here: SDXL LoRA training at 1024 px (a crop and a class image per step, bf16) is
# commonly reported to need 20 to 30 GB without checkpointing.
CHECKPOINTING_BELOW_GB = 30
PRECISION = {"float16": "fp16", "bfloat16": "bf16", "float32": "no"}


class TrainingError(ValueError):
    """Training can't go on; the message says what to change."""


def make_accelerator(hardware: Hardware):
    """The Accelerator for this hardware's dtype (accelerate allows one mixed precision per process)."""
    from accelerate import Accelerator

    if hardware.dtype == "float16" and hardware.device == "cpu":
        # accelerate turns fp16 autocast and loss scaling off on the CPU, and the float16 UNet
        # then fails on the float32 LoRA layers' inputs with a bare dtype error.
        raise TrainingError("training in float16 needs a CUDA GPU (fp16 autocast and loss "
                            "scaling are GPU-only); on the CPU set TALEWEAVER_DTYPE=float32 "
                            "or bfloat16")
    precision = PRECISION[hardware.dtype]
    try:
        return Accelerator(mixed_precision=precision, cpu=hardware.device == "cpu")
    except ValueError as err:
        raise TrainingError(
            f"this process already trains with other precision settings; training in "
            f"{hardware.dtype} on {hardware.device} needs a new process ({err})") from err


def uses_gradient_checkpointing(config: TrainConfig, hardware: Hardware) -> bool:
    """The config's choice; "auto" turns it on only for CUDA GPUs with little memory."""
    if config.gradient_checkpointing != "auto":
        return config.gradient_checkpointing == "on"
    if hardware.kind != "cuda":
        return False  # the CPU has the memory; ZeroGPU cards have 48 GB or more
    import torch

    total = torch.cuda.get_device_properties(hardware.device).total_memory
    return total < CHECKPOINTING_BELOW_GB * 1024 ** 3


def optimizer_name(config: TrainConfig, hardware: Hardware) -> str:
    """The optimizer a run uses: "auto" is bitsandbytes' 8-bit AdamW on a GPU, else AdamW."""
    if config.optimizer != "auto":
        return config.optimizer
    return "adamw8bit" if hardware.has_gpu else "adamw"


def make_optimizer(params: list, config: TrainConfig, hardware: Hardware):
    """AdamW over the LoRA weights, 8-bit or not as optimizer_name says."""
    import torch

    name = optimizer_name(config, hardware)
    options = dict(lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=config.weight_decay)
    if name == "adamw8bit":
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(params, **options)
    return torch.optim.AdamW(params, fused=True, **options)  # one kernel for all LoRA tensors


def warmup_then_constant(warmup_steps: int):
    """LR factor per step: rising linearly to 1 over the warm-up, then 1."""
    return lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


@dataclass
class TrainingRun:
    """Everything a step needs; `step(k)` = batch, loss (forward), backward, update."""

    config: TrainConfig
    accelerator: Any
    pipe: Any
    modules: dict[str, Any]
    data: TrainingSet
    schedule: NoiseSchedule
    params: list
    optimizer: Any
    lr_scheduler: Any

    def step(self, step: int):
        """One optimisation step; returns the loss (a tensor, not yet synchronised)."""
        loss = self.loss(self.batch(step))
        self.backward(loss)
        self.update()
        return loss.detach()

    def batch(self, step: int) -> Batch:
        generator = step_generator(self.config.seed, step, self.accelerator.process_index)
        return draw_batch(self.data, self.schedule, generator, self.config.batch_size,
                          self.config.offset_noise)

    def loss(self, batch: Batch):
        with self.accelerator.autocast():
            if self.data.prompt_embeds is not None:
                embeds, pooled = self.data.prompt_embeds, self.data.pooled_embeds
            else:
                embeds, pooled = encode_prompts(self.pipe, self.data.prompts)
            return diffusion_loss(self.pipe.unet, batch, embeds, pooled, self.schedule,
                                  self.config.snr_gamma, self.config.prior_weight)

    def backward(self, loss) -> None:
        self.accelerator.backward(loss)

    def update(self) -> None:
        self._average_gradients()
        if self.config.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def any_process(self, flag: bool) -> bool:
        """True in every process when `flag` is true in any (one process alone has it, e.g.
        the one that reports progress and was cancelled); the flag itself with one process."""
        if self.accelerator.num_processes == 1:
            return flag
        import torch

        mark = torch.tensor([float(flag)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(mark, reduction="sum").item())

    def mean_across_processes(self, loss) -> float:
        """The loss averaged over all processes (the same number everywhere)."""
        return self.accelerator.reduce(loss, reduction="mean").item()

    def state(self, step: int, key: dict[str, Any]) -> TrainingState:
        scaler = self.accelerator.scaler
        return TrainingState(step=step, key=key, lora=lora_state_dict(self.modules),
                             optimizer=self.optimizer.state_dict(),
                             lr_scheduler=self.lr_scheduler.state_dict(),
                             grad_scaler=scaler.state_dict() if scaler is not None else None)

    def restore(self, state: TrainingState) -> None:
        load_lora_state(self.modules, state.lora)
        self.optimizer.load_state_dict(state.optimizer)
        self.lr_scheduler.load_state_dict(state.lr_scheduler)
        if self.accelerator.scaler is not None and state.grad_scaler is not None:
            self.accelerator.scaler.load_state_dict(state.grad_scaler)

    def _average_gradients(self) -> None:
        if self.accelerator.num_processes == 1:
            return
        import torch

        # The same parameters lack a gradient in every process: SDXL reads the first text
        # encoder's penultimate layer, so LoRA on its last layer never gets one.
        grads = [p.grad for p in self.params if p.grad is not None]
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(part.view_as(grad))


@contextlib.contextmanager
def open_run(pipe, accelerator, hardware: Hardware, config: TrainConfig,
             crops: Sequence[tuple[Image.Image, Crop]], class_images: Sequence[Image.Image],
             prompts: Sequence[str], resolution: int) -> Iterator[TrainingRun]:
    """Prepare the cached data, attach fresh LoRA layers and an optimizer; detach on exit."""
    import torch

    data = prepare_training_set(pipe, crops, class_images, prompts, resolution,
                                flip=config.flip, cache_text=not config.train_text_encoder)
    checkpointing = uses_gradient_checkpointing(config, hardware)
    with lora_layers(pipe, config, gradient_checkpointing=checkpointing) as modules:
        params = trainable_parameters(modules)
        optimizer = make_optimizer(params, config, hardware)
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                         warmup_then_constant(config.warmup_steps))
        try:
            yield TrainingRun(config=config, accelerator=accelerator, pipe=pipe, modules=modules,
                              data=data, schedule=NoiseSchedule.from_pipeline(pipe), params=params,
                              optimizer=accelerator.prepare_optimizer(optimizer),
                              lr_scheduler=lr_scheduler)
        finally:
            accelerator.free_memory()
