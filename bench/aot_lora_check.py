"""Can an ahead-of-time compiled UNet follow peft LoRA adapters being switched? (It can't.)

    python bench/aot_lora_check.py            # the tiny test model, on the CPU, in a minute

ZeroGPU's AoT path (spaces.aoti_capture, aoti_compile, aoti_apply) compiles what
torch.export.export captured from one call of the UNet, then aoti_apply replaces the UNet's
forward by the compiled program and empties its parameters. This exports the tiny UNet with
LoRA adapter "a" active, as a page would leave it, and then does what a book does between pages
and in the second pass: switch to adapter "b", turn LoRA off, load a new adapter "c". The eager
UNet follows each change; the exported program (what AOTInductor would compile) keeps drawing
with "a". Prints the largest difference of each output from the eager UNet's.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch
    from peft import LoraConfig

    from pipeline.testing import build_tiny_pipeline

    torch.manual_seed(0)
    unet = build_tiny_pipeline().unet.eval()
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    for name in ("a", "b"):
        unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                    target_modules=targets), adapter_name=name)
    randomize_lora_b(unet, "")
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    args = (sample, torch.tensor([500]))
    kwargs = {"encoder_hidden_states": torch.randn(1, 77, 96, generator=generator),
              "added_cond_kwargs": {"text_embeds": torch.randn(1, 32, generator=generator),
                                    "time_ids": torch.tensor([[64., 64, 0, 0, 64, 64]])},
              "return_dict": False}

    def eager():
        with torch.no_grad():
            return unet(*args, **kwargs)[0]

    unet.set_adapters(["a"])
    with_a = eager()
    try:
        exported = torch.export.export(unet, args, kwargs, strict=False).module()
    except Exception as err:  # noqa: BLE001 - what export says is the finding
        print(f"torch.export could not capture the UNet with peft LoRA layers: "
              f"{type(err).__name__}: {str(err)[:300]}")
        return

    def compiled():
        with torch.no_grad():
            return exported(*args, **kwargs)[0]

    print(f"captured with adapter a: exported vs eager {(compiled() - with_a).abs().max():.2e}")
    unet.set_adapters(["b"])
    print(f"switched to b: eager changed by {(eager() - with_a).abs().max():.2e}; exported "
          f"still equals a's output within {(compiled() - with_a).abs().max():.2e}")
    unet.disable_adapters()
    print(f"LoRA off: eager changed by {(eager() - with_a).abs().max():.2e}; exported still "
          f"equals a's output within {(compiled() - with_a).abs().max():.2e}")
    unet.enable_adapters()
    unet.add_adapter(LoraConfig(r=8, lora_alpha=8, init_lora_weights="gaussian",
                                target_modules=targets), adapter_name="c")
    randomize_lora_b(unet, ".c.")
    unet.set_adapters(["c"])
    print(f"new adapter c (rank 8): eager changed by {(eager() - with_a).abs().max():.2e}; "
          f"exported still equals a's output within {(compiled() - with_a).abs().max():.2e}")


def randomize_lora_b(unet, part: str) -> None:
    """LoRA's B matrices start at zero (an adapter that changes nothing): fill them."""
    import torch

    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name and part in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))


if __name__ == "__main__":
    main()
