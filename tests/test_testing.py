import subprocess
import sys

import torch

from pipeline import testing


def test_byte_level_tokenizers_encode_any_text():
    tok = testing.build_tokenizer()
    ids = tok("Zoë & D'Arcy 🐶 读书").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.unk_token_id not in ids[1:-1]
    assert testing.build_tokenizer(pad_token="!").pad_token == "!"


def test_same_seed_same_weights():
    a, b = testing.build_tiny_pipeline(seed=3), testing.build_tiny_pipeline(seed=3)
    c = testing.build_tiny_pipeline(seed=4)
    wa, wb, wc = (p.unet.state_dict()["conv_in.weight"] for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_build_does_not_disturb_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    testing.build_tiny_pipeline()
    assert torch.equal(torch.rand(1), expected)


def test_cli_writes_a_loadable_folder(tmp_path):
    out = tmp_path / "tiny"
    done = subprocess.run([sys.executable, "-m", "pipeline", "tiny-model", str(out), "--json"],
                          capture_output=True, text=True, check=True)
    assert f'"path": "{out}"' in done.stdout
    for part in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        assert (out / part).is_dir()
    assert (out / "model_index.json").is_file()
    assert f'"safety_model": "{out / "safety-classifier"}"' in done.stdout
    assert (out / "safety-classifier" / "config.json").is_file()
