"""Test helpers for the Hub: an in-process fake of the HfApi methods hub.py uses (it raises
huggingface_hub's real error classes; the Hub is unreachable here) and an adapter folder as
training leaves it. The fixtures built on them (fake, online, waits, mia) are in conftest.py."""
import hashlib
import json
from pathlib import Path

import numpy as np
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.hf_api import CommitInfo, ModelInfo, RepoUrl
from huggingface_hub.utils import httpx
from PIL import Image
from safetensors.numpy import save_file

from pipeline.adapter_files import ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, VALIDATION_IMAGE
from pipeline.characters import CharacterStore
from pipeline.hub.repos import push_adapter

ALICE, BOB = "hf_alice_token", "hf_bob_token"
REPO = "alice/taleweaver-mia"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"


def http_error(status, cls=HfHubHTTPError, headers=None):
    """An error as huggingface_hub raises it: the status lives on error.response."""
    response = httpx.Response(status, headers=headers or {},
                               request=httpx.Request("POST", "https://huggingface.co/api/x"))
    return cls(f"{status} Client Error.", response=response)


class FakeHub:
    """The HfApi methods hub.py uses, in memory: tokens, private repos, files, commits.

    It records every call (method, repo, token, details) and raises queued errors first.
    """

    def __init__(self):
        self.users = {ALICE: "alice", BOB: "bob"}
        self.repos = {}  # repo id -> {"private", "owner", "files": {path: bytes}, "sha"}
        self.calls = []
        self.queued = {}

    def fail(self, method, *errors):
        self.queued.setdefault(method, []).extend(errors)

    def methods(self):
        return [call[0] for call in self.calls]

    def _enter(self, method, token, repo_id=None, **details):
        self.calls.append((method, repo_id, token, details))
        if self.queued.get(method):
            raise self.queued[method].pop(0)
        if token not in self.users:
            raise http_error(401)
        return self.users[token]

    def _readable(self, user, repo_id):
        repo = self.repos.get(repo_id)
        if repo is None or (repo["private"] and repo["owner"] != user):
            raise http_error(404, RepositoryNotFoundError)
        return repo

    def whoami(self, token=None, *, cache=False):
        return {"name": self._enter("whoami", token), "type": "user"}

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False):
        user = self._enter("create_repo", token, repo_id, private=private, repo_type=repo_type)
        if repo_id.split("/")[0] != user:
            raise http_error(403)
        if repo_id in self.repos and not exist_ok:
            raise http_error(409)
        self.repos.setdefault(repo_id, {"private": bool(private), "owner": user, "files": {
            ".gitattributes": b"*.safetensors filter=lfs\n"}, "sha": "0" * 40})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def repo_info(self, repo_id, *, repo_type=None, token=None):
        repo = self._readable(self._enter("repo_info", token, repo_id), repo_id)
        return ModelInfo(id=repo_id, private=repo["private"], sha=repo["sha"])

    def list_repo_files(self, repo_id, *, repo_type=None, token=None, revision=None):
        return sorted(self._readable(self._enter("list_repo_files", token, repo_id),
                                     repo_id)["files"])

    def create_commit(self, repo_id, operations, *, commit_message, token=None,
                      repo_type=None):
        operations = list(operations)
        user = self._enter("create_commit", token, repo_id,
                           paths=[op.path_in_repo for op in operations])
        repo = self._readable(user, repo_id)
        if repo["owner"] != user:
            raise http_error(403)
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                with op.as_file() as handle:
                    repo["files"][op.path_in_repo] = handle.read()
            else:
                assert isinstance(op, CommitOperationDelete)
                del repo["files"][op.path_in_repo]
        repo["sha"] = hashlib.sha1(repr(sorted(repo["files"].items())).encode()).hexdigest()
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{repo['sha']}",
                          commit_message=commit_message, commit_description="", oid=repo["sha"])

    def snapshot_download(self, repo_id, *, repo_type=None, revision=None, local_dir=None,
                          token=None, allow_patterns=None):
        repo = self._readable(self._enter("snapshot_download", token, repo_id,
                                          revision=revision), repo_id)
        assert revision == repo["sha"]
        local_dir = Path(local_dir)
        (local_dir / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        for path, data in repo["files"].items():
            if allow_patterns is None or path in allow_patterns:
                (local_dir / path).write_bytes(data)
        return str(local_dir)

    def delete_repo(self, repo_id, *, token=None, repo_type=None, missing_ok=False):
        user = self._enter("delete_repo", token, repo_id)
        if repo_id not in self.repos:
            if missing_ok:
                return
            raise http_error(404, RepositoryNotFoundError)
        if self.repos[repo_id]["owner"] != user:
            raise http_error(403)
        del self.repos[repo_id]


class NoHub:
    """Any use of the Hub fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the Hub was used ({name}) where it must not be")


def write_adapter(folder, config=None):
    """An adapter folder as training leaves it, plus things that must never be uploaded."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    save_file({"unet.down.lora_A.weight": rng.standard_normal((4, 8), dtype=np.float32)},
              str(folder / ADAPTER_WEIGHTS))
    save_file({"lora_unet_down.lora_down.weight": rng.standard_normal((4, 8), dtype=np.float32)},
              str(folder / KOHYA_WEIGHTS))
    if config is None:
        config = {"base_model": SDXL, "rank": 16, "steps": 800, "learning_rate": 1e-4,
                  "resolution": 1024, "instance_prompt": "a photo of ohwx girl"}
    (folder / TRAIN_CONFIG).write_text(json.dumps(config))
    Image.new("RGB", (64, 64), (10, 20, 30)).save(folder / VALIDATION_IMAGE)
    (folder / "checkpoint-400").mkdir()
    (folder / "checkpoint-400" / "optimizer.bin").write_bytes(b"state")
    (folder / "crops").mkdir()
    Image.new("RGB", (64, 64)).save(folder / "crops" / "01.png")
    (folder / "notes.txt").write_text("private notes")


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def adapter_of(settings, character, user="alice"):
    return CharacterStore(settings, user).adapter_dir(character)


def push(settings, fake, waits, character, token=ALICE, **kwargs):
    return push_adapter(settings, "alice", character, token, api=fake, sleep=waits.append,
                        **kwargs)


def neutral(message):
    """A message any front door can show: no command, no server path, no Markdown."""
    return not any(word in message for word in ("`", "python -m", "HF_TOKEN", "/tmp", "/data"))
