"""pipeline/hub.py (and `python -m pipeline push/pull/delete-character --hub`) against the
in-process fake of the HfApi methods it uses (tests/fake_hub.py; the Hub is unreachable here)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_hub import ALICE, BOB, REPO, NoHub, adapter_of, files_of, http_error, neutral, push
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import httpx

from pipeline.actions.characters import RepoNotDeleted, delete_character
from pipeline.adapter_files import (ADAPTER_WEIGHTS, HUB_RECORD, KOHYA_WEIGHTS, MODEL_CARD,
                                    TRAIN_CONFIG, VALIDATION_IMAGE)
from pipeline.characters import CharacterStore
from pipeline.cli import main
from pipeline.hub import calls as hub_calls
from pipeline.hub.repos import (AdapterFolderError, AdapterUnavailableError, HubResult,
                                delete_hub_repo, ensure_local_adapter, hub_record, install_adapter,
                                push_adapter)
from pipeline.store import remove_tree

# --- pushing -------------------------------------------------------------------------------

def test_push_creates_a_private_repo_before_uploading_with_the_users_token(settings, mia, fake,
                                                                          waits, online):
    result = push(settings, fake, waits, mia)

    assert result.status == "pushed" and result.repo_id == REPO
    assert result.url == "https://huggingface.co/" + REPO and result.revision == fake.repos[REPO]["sha"]
    assert fake.methods() == ["whoami", "create_repo", "repo_info", "list_repo_files",
                              "create_commit"]
    create = fake.calls[1]
    assert create[1] == REPO and create[3] == {"private": True, "repo_type": "model"}
    assert {call[2] for call in fake.calls} == {ALICE}
    assert fake.repos[REPO]["private"] and waits == []


def test_repo_holds_only_the_published_files(settings, mia, fake, waits, online):
    push(settings, fake, waits, mia)

    folder = adapter_of(settings, mia)
    repo_files = fake.repos[REPO]["files"]
    assert set(repo_files) == {".gitattributes", ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG,
                               MODEL_CARD}
    for name in (ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, MODEL_CARD):
        assert repo_files[name] == (folder / name).read_bytes()


def test_validation_image_goes_only_when_asked_and_leaves_when_no_longer_asked(settings, mia,
                                                                               fake, waits,
                                                                               online):
    push(settings, fake, waits, mia, include_validation_image=True)
    repo = fake.repos[REPO]
    assert VALIDATION_IMAGE in repo["files"]
    assert "url: validation.png" in repo["files"][MODEL_CARD].decode()

    result = push(settings, fake, waits, mia)

    assert result.status == "pushed"
    assert VALIDATION_IMAGE not in repo["files"]
    assert "validation.png" not in repo["files"][MODEL_CARD].decode()


def test_push_records_where_the_adapter_went(settings, mia, fake, waits, online):
    assert hub_record(settings, "alice", mia) is None
    result = push(settings, fake, waits, mia)

    record = hub_record(settings, "alice", mia)
    assert (record.repo_id, record.revision, record.action) == (REPO, result.revision, "pushed")
    assert record.url == result.url and MODEL_CARD in record.files
    assert json.loads((adapter_of(settings, mia) / HUB_RECORD).read_text())["repo_id"] == REPO


def test_signed_in_user_pushes_with_the_oauth_token_into_their_namespace(settings, mia, fake,
                                                                        waits, online,
                                                                        monkeypatch):
    monkeypatch.setenv("HF_TOKEN", BOB)  # the Space owner's token: never used for Alice
    result = push(settings, fake, waits, mia, token=ALICE, namespace="alice")

    assert result.status == "pushed" and result.repo_id == REPO
    assert "whoami" not in fake.methods()
    assert {call[2] for call in fake.calls} == {ALICE}


def test_without_a_token_nothing_is_sent_and_the_result_says_why(settings, mia, online,
                                                                  monkeypatch):
    monkeypatch.setenv("HF_TOKEN", BOB)
    result = push_adapter(settings, "alice", mia, None, api=NoHub())

    assert (result.status, result.reason) == ("skipped", "no_token")
    assert result.message == ("Upload skipped: no Hugging Face token. Mia's adapter is safe on "
                              "this machine.")
    assert (adapter_of(settings, mia) / ADAPTER_WEIGHTS).is_file()


def test_offline_skips_the_upload(settings, mia):
    result = push_adapter(settings, "alice", mia, ALICE, api=NoHub())

    assert (result.status, result.reason) == ("skipped", "offline")
    assert "offline mode" in result.message and neutral(result.message)
    assert hub_record(settings, "alice", mia) is None


def test_a_result_has_a_reason_exactly_when_nothing_was_done():
    assert HubResult("skipped", "", "", "x", reason="offline").reason == "offline"
    with pytest.raises(ValueError, match="reason 'tired' is not one of no_token, public_repo"):
        HubResult("failed", "", "", "x", reason="tired")
    with pytest.raises(ValueError, match="a failed result needs reason"):
        HubResult("failed", "", "", "x")
    with pytest.raises(ValueError, match="a pushed result has no reason"):
        HubResult("pushed", REPO, "", "x", reason="network")


def test_pushing_a_character_without_an_adapter_is_an_error(settings, mia, fake, online):
    remove_tree(adapter_of(settings, mia))
    with pytest.raises(AdapterUnavailableError, match="Mia has no trained adapter yet: train Mia"):
        push_adapter(settings, "alice", mia, ALICE, api=fake)
    assert fake.calls == []


def test_an_existing_public_repo_is_never_uploaded_to(settings, mia, fake, waits, online):
    fake.create_repo(REPO, token=ALICE, private=False)
    fake.calls.clear()

    result = push(settings, fake, waits, mia)

    assert (result.status, result.reason) == ("failed", "public_repo")
    assert "is public" in result.message and neutral(result.message)
    assert "create_commit" not in fake.methods()
    assert set(fake.repos[REPO]["files"]) == {".gitattributes"}


# --- getting the adapter for generation ----------------------------------------------------

def test_a_local_adapter_is_used_without_the_hub(settings, mia, online):
    folder = ensure_local_adapter(settings, "alice", mia, ALICE, api=NoHub())

    assert folder == adapter_of(settings, mia) and (folder / ADAPTER_WEIGHTS).is_file()


def test_a_missing_adapter_is_downloaded_once_and_kept(settings, mia, fake, waits, online):
    push(settings, fake, waits, mia)
    original = files_of(adapter_of(settings, mia))
    remove_tree(adapter_of(settings, mia))
    fake.calls.clear()

    folder = ensure_local_adapter(settings, "alice", mia, ALICE, api=fake, sleep=waits.append)

    assert fake.methods() == ["whoami", "repo_info", "snapshot_download"]
    assert {call[2] for call in fake.calls} == {ALICE}
    got = files_of(folder)
    assert got.pop(HUB_RECORD) and got == {k: original[k] for k in
                                           (ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, MODEL_CARD)}
    record = hub_record(settings, "alice", mia)
    assert (record.repo_id, record.action, record.revision) == (REPO, "downloaded",
                                                                fake.repos[REPO]["sha"])
    assert not [p for p in CharacterStore(settings, "alice").folder(mia).iterdir()
                if p.name.startswith(".adapter")]
    assert ensure_local_adapter(settings, "alice", mia, ALICE, api=NoHub()) == folder


def test_a_repo_shaped_folder_installs_like_a_download(settings, mia, fake, waits, online,
                                                      tmp_path):
    push(settings, fake, waits, mia)
    clone = tmp_path / "clone"  # what `git clone` of the repo gives
    clone.mkdir()
    for path, data in fake.repos[REPO]["files"].items():
        (clone / path).write_bytes(data)
    (clone / ".git").mkdir()
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    remove_tree(adapter_of(settings, mia))
    downloaded = files_of(ensure_local_adapter(settings, "alice", mia, ALICE, api=fake))
    remove_tree(adapter_of(settings, mia))

    installed = files_of(install_adapter(settings, "alice", mia, clone))

    downloaded.pop(HUB_RECORD)
    assert installed == downloaded
    assert set(installed) == {ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, MODEL_CARD}
    with pytest.raises(AdapterFolderError, match="already has an adapter"):
        install_adapter(settings, "alice", mia, clone)


def test_a_folder_without_valid_weights_is_refused(settings, mia, tmp_path):
    remove_tree(adapter_of(settings, mia))
    with pytest.raises(AdapterFolderError,
                       match=f"^{tmp_path} has no pytorch_lora_weights.safetensors"):
        install_adapter(settings, "alice", mia, tmp_path)
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(b"\xff" * 64)
    with pytest.raises(AdapterFolderError, match=f"in {tmp_path} is not a valid safetensors"):
        install_adapter(settings, "alice", mia, tmp_path)
    assert not CharacterStore(settings, "alice").has_adapter(mia)


def test_no_local_copy_and_no_way_to_fetch_it(settings, mia, fake, waits, monkeypatch):
    remove_tree(adapter_of(settings, mia))
    # offline, an adapter that isn't here has never been trained here: say that, not "go online"
    with pytest.raises(AdapterUnavailableError, match="^Mia has no trained adapter on this "
                                                      "machine yet: train Mia first$"):
        ensure_local_adapter(settings, "alice", mia, ALICE, api=NoHub())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(AdapterUnavailableError, match="train Mia first, or sign in"):
        ensure_local_adapter(settings, "alice", mia, None, api=NoHub())
    with pytest.raises(AdapterUnavailableError, match="Mia has no trained adapter yet: train Mia"):
        ensure_local_adapter(settings, "alice", mia, ALICE, api=fake, sleep=waits.append)


def test_download_errors_name_the_character(settings, mia, fake, waits, online):
    push(settings, fake, waits, mia)
    remove_tree(adapter_of(settings, mia))
    cut = LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub")
    cut.__cause__ = httpx.ConnectError("[Errno 101] Network is unreachable")
    fake.fail("snapshot_download", *[cut] * hub_calls.ATTEMPTS)

    with pytest.raises(AdapterUnavailableError, match="Mia's adapter isn't on this machine and "
                                                      "the Hub can't be reached: .*ConnectError"):
        ensure_local_adapter(settings, "alice", mia, ALICE, api=fake, sleep=waits.append)
    assert waits == [2.0, 4.0, 8.0]

    fake.fail("repo_info", http_error(401))
    with pytest.raises(AdapterUnavailableError, match=f"couldn't be fetched from {REPO}: .*401"):
        ensure_local_adapter(settings, "alice", mia, ALICE, api=fake, sleep=waits.append)
    assert not CharacterStore(settings, "alice").has_adapter(mia)


def test_an_empty_repo_from_a_failed_push_is_not_an_adapter(settings, mia, fake, waits, online):
    fake.fail("create_commit", http_error(403))
    assert push(settings, fake, waits, mia).status == "failed"
    remove_tree(adapter_of(settings, mia))

    with pytest.raises(AdapterUnavailableError, match=f"{REPO} holds no usable adapter .the "
                                                      "repo has no pytorch_lora") as refused:
        ensure_local_adapter(settings, "alice", mia, ALICE, api=fake)
    assert str(settings.data_dir) not in str(refused.value)  # its download folder, a server path


def test_downloaded_adapter_loads_into_sdxl_like_the_original(settings, mia, fake, waits, online,
                                                              tmp_path):
    import torch
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    from pipeline.testing import build_tiny_pipeline

    trained = build_tiny_pipeline()
    torch.manual_seed(1)
    trained.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                        target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # a trained adapter: lora_B is no longer zero
        for name, param in trained.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    original = adapter_of(settings, mia)
    StableDiffusionXLPipeline.save_lora_weights(
        original, unet_lora_layers=convert_state_dict_to_diffusers(
            get_peft_model_state_dict(trained.unet)))
    push(settings, fake, waits, mia)
    kept = tmp_path / "original"
    kept.mkdir()
    (kept / ADAPTER_WEIGHTS).write_bytes((original / ADAPTER_WEIGHTS).read_bytes())
    remove_tree(original)

    downloaded = ensure_local_adapter(settings, "alice", mia, ALICE, api=fake)

    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)

    def draw():
        return pipe("ohwx girl", num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    base = draw()
    pipe.load_lora_weights(kept, weight_name=ADAPTER_WEIGHTS, adapter_name="kept")
    expected = draw()
    pipe.unload_lora_weights()
    pipe.load_lora_weights(downloaded, weight_name=ADAPTER_WEIGHTS, adapter_name="mia")
    assert np.array_equal(draw(), expected) and not np.array_equal(expected, base)


# --- deleting ------------------------------------------------------------------------------

def test_deleting_the_repo_on_request(settings, mia, fake, waits, online):
    push(settings, fake, waits, mia)
    fake.calls.clear()

    result = delete_hub_repo(settings, "alice", mia, ALICE, api=fake, sleep=waits.append)

    assert result.status == "deleted" and result.repo_id == REPO and REPO not in fake.repos
    assert fake.methods() == ["delete_repo"]  # the recorded repo: no whoami needed
    assert hub_record(settings, "alice", mia) is None
    assert (adapter_of(settings, mia) / ADAPTER_WEIGHTS).is_file()


def test_deleting_without_a_record_uses_the_token_owners_namespace(settings, mia, fake, online):
    fake.create_repo(REPO, token=ALICE, private=True)

    result = delete_hub_repo(settings, "alice", mia, ALICE, api=fake)

    assert result.status == "deleted" and REPO not in fake.repos
    assert fake.methods()[-2:] == ["whoami", "delete_repo"]


def test_deleting_can_be_skipped_or_fail(settings, mia, fake, waits, online):
    skipped = delete_hub_repo(settings, "alice", mia, None, api=NoHub())
    assert (skipped.status, skipped.reason) == ("skipped", "no_token")
    assert "no Hugging Face token" in skipped.message and neutral(skipped.message)

    fake.create_repo(REPO, token=ALICE, private=True)
    failed = delete_hub_repo(settings, "alice", mia, BOB, namespace="alice", api=fake)
    assert (failed.status, failed.reason) == ("failed", "forbidden")
    assert "403 Forbidden" in failed.message and neutral(failed.message)
    assert REPO in fake.repos


def test_deleting_a_character_without_its_repo_never_asks_the_hub(settings, mia):
    deleted = delete_character(settings, "alice", "mia", ALICE, with_repo=False, api=NoHub())

    assert deleted.to_json() == {"deleted": "Mia", "slug": "mia", "hub": None, "books": []}
    assert CharacterStore(settings, "alice").list() == []


def test_deleting_a_character_with_its_repo_deletes_the_repo_first(settings, mia, fake, waits,
                                                                   online):
    push(settings, fake, waits, mia)

    deleted = delete_character(settings, "alice", "Mia", ALICE, with_repo=True, api=fake,
                               sleep=waits.append)

    assert deleted.hub.status == "deleted" and deleted.hub.repo_id == REPO
    assert deleted.to_json()["hub"]["repo_id"] == REPO
    assert REPO not in fake.repos and CharacterStore(settings, "alice").list() == []


@pytest.mark.parametrize("token, error, reason", [
    (None, None, "no_token"),
    (ALICE, http_error(403), "forbidden"),
    (ALICE, httpx.ConnectError("[Errno 101] Network is unreachable"), "network"),
])
def test_when_the_repo_is_not_deleted_nothing_is(settings, mia, fake, waits, online, token,
                                                 error, reason):
    push(settings, fake, waits, mia)
    before = files_of(CharacterStore(settings, "alice").folder(mia))
    for _ in range(hub_calls.ATTEMPTS):
        fake.fail("delete_repo", *([error] if error else []))

    with pytest.raises(RepoNotDeleted, match=r"Mia's Hub repo .*\. Nothing was deleted\.$") as kept:
        delete_character(settings, "alice", "Mia", token, with_repo=True, api=fake,
                         sleep=waits.append)

    assert kept.value.result.reason == reason and isinstance(kept.value, ValueError)
    assert REPO in fake.repos and CharacterStore(settings, "alice").list() == [mia]
    assert files_of(CharacterStore(settings, "alice").folder(mia)) == before


# --- the command line ------------------------------------------------------------------

def test_cli_push_uses_hf_token(settings, mia, fake, online, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    monkeypatch.setattr(hub_calls, "hf_api", lambda: fake)

    code = main(["--data-dir", str(settings.data_dir), "--user", "alice", "push", "mia", "--json"])

    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "pushed" and out["repo_id"] == REPO
    assert {call[2] for call in fake.calls} == {ALICE}

    fake.fail("create_repo", http_error(403))
    assert main(["--data-dir", str(settings.data_dir), "--user", "alice", "push", "Mia"]) == 1
    err = capsys.readouterr().err
    assert "403 Forbidden" in err
    assert err.rstrip().endswith("With a token that may write to your repos, run: "
                                 "HF_TOKEN=hf_... python -m pipeline push Mia")


def test_cli_push_without_token_says_it_skipped_and_fails(settings, mia):
    env = {k: v for k, v in __import__("os").environ.items() if k != "HF_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "pipeline", "--data-dir", str(settings.data_dir),
                           "--user", "alice", "push", "Mia"], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parents[1], timeout=120)

    assert done.returncode == 1 and done.stdout == ""  # nothing was pushed
    assert done.stderr.startswith("Upload skipped: no Hugging Face token. Mia's adapter is safe")
    assert "To do it, run: HF_TOKEN=hf_... python -m pipeline push Mia" in done.stderr


@pytest.mark.parametrize("reason, advice", [
    ("", ""),
    ("no_token", "To do it, run: HF_TOKEN=hf_... python -m pipeline push 'Mia Rose' (a write "
                 "token from https://huggingface.co/settings/tokens)."),
    ("offline", "When online, unset HF_HUB_OFFLINE and run: python -m pipeline push 'Mia Rose'"),
    ("unauthorized", "Make a new token at https://huggingface.co/settings/tokens and run: "
                     "HF_TOKEN=hf_... python -m pipeline push 'Mia Rose'"),
    ("public_repo", "Then run: python -m pipeline push 'Mia Rose'"),
    ("server", "Try again later: python -m pipeline push 'Mia Rose'"),
])
def test_the_cli_says_what_to_run_after_a_hub_action_that_did_not_happen(reason, advice):
    from pipeline.cli.hub import next_step

    assert next_step(reason, "push 'Mia Rose'") == advice


def test_cli_pull(settings, mia, fake, waits, online, monkeypatch, capsys, tmp_path):
    data = ["--data-dir", str(settings.data_dir), "--user", "alice"]
    monkeypatch.setenv("HF_TOKEN", ALICE)
    monkeypatch.setattr(hub_calls, "hf_api", lambda: fake)
    push(settings, fake, waits, mia)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (ADAPTER_WEIGHTS, TRAIN_CONFIG):
        (copy / name).write_bytes((adapter_of(settings, mia) / name).read_bytes())

    assert main(data + ["pull", "Mia", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "local"
    remove_tree(adapter_of(settings, mia))
    assert main(data + ["pull", "Mia"]) == 0
    assert "downloaded from its private Hub repo" in capsys.readouterr().out
    remove_tree(adapter_of(settings, mia))
    assert main(data + ["pull", "Mia", "--from", str(copy)]) == 0
    assert f"copied from {copy}" in capsys.readouterr().out
    assert set(files_of(adapter_of(settings, mia))) == {ADAPTER_WEIGHTS, TRAIN_CONFIG}


def test_cli_delete_character_with_hub(settings, mia, fake, waits, online, monkeypatch, capsys):
    data = ["--data-dir", str(settings.data_dir), "--user", "alice"]
    monkeypatch.setattr(hub_calls, "hf_api", lambda: fake)
    push(settings, fake, waits, mia)
    monkeypatch.delenv("HF_TOKEN", raising=False)

    assert main(data + ["delete-character", "Mia", "--hub"]) == 1
    assert capsys.readouterr().err == (
        "error: Mia's Hub repo was not deleted: no Hugging Face token. Nothing was deleted. To "
        "do it, run: HF_TOKEN=hf_... python -m pipeline delete-character Mia --hub (a write "
        "token from https://huggingface.co/settings/tokens).\n")
    assert REPO in fake.repos and CharacterStore(settings, "alice").list() == [mia]

    monkeypatch.setenv("HF_TOKEN", ALICE)
    assert main(data + ["delete-character", "Mia", "--hub", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["deleted"], out["hub"]["status"], out["hub"]["repo_id"]) == ("Mia", "deleted", REPO)
    assert REPO not in fake.repos and CharacterStore(settings, "alice").list() == []


def test_a_damaged_local_adapter_is_named_and_never_handed_to_the_pipeline(settings, mia):
    store = CharacterStore(settings, "alice")
    weights = store.adapter_dir(mia) / ADAPTER_WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-100])  # cut short, as by a full disk or a crash
    with pytest.raises(AdapterUnavailableError, match="Mia's adapter on this machine is damaged"):
        ensure_local_adapter(settings, "alice", mia)
