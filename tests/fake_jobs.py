"""A stand-in for Hugging Face Jobs and storage buckets, built on fake_hub.FakeHub.

`FolderHub` keeps FakeHub's repos, plus buckets and the record of calls, in a folder, so that a
job's own process sees the same Hub as the test. `FakeJobs` (a FolderHub) runs a job as a
container would: its command, unchanged, as a local subprocess with only the job's environment
and secrets (plus a PATH on which `python` and `accelerate` are this venv's, and a private
TMPDIR); stdout and stderr go to the job's log. In the job's process `sitecustomize` (written
by `FakeJobs`) swaps `pipeline.hub.calls.hf_api` for a FolderHub on the same folder, as the
in-process tests swap it for a FakeHub (the repository root is on its PYTHONPATH, as the
working directory is for `python -m` in the Space's image). Nothing reaches the network.
"""
import contextlib
import fcntl
import functools
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from fake_hub import FakeHub, http_error
from huggingface_hub import JobHardwareInfo, JobInfo
from huggingface_hub._buckets import BucketFile, BucketInfo
from huggingface_hub.errors import BucketNotFoundError, EntryNotFoundError

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SITECUSTOMIZE = """\
import os
if os.environ.get("FAKE_HUB_DIR"):
    import fake_jobs
    fake_jobs.install_in_job(os.environ["FAKE_HUB_DIR"])
"""
# Made-up prices in the shape list_jobs_hardware returns (per minute); real ones come from
# the Hub.
HARDWARE = [
    dict(name="cpu-basic", prettyName="CPU Basic", cpu="2 vCPU", ram="16 GB", accelerator=None,
         unitCostMicroUSD=167, unitCostUSD=0.000167, unitLabel="minute"),
    dict(name="t4-small", prettyName="Nvidia T4 - small", cpu="4 vCPU", ram="15 GB",
         accelerator=dict(type="gpu", model="T4", quantity="1", vram="16 GB",
                          manufacturer="Nvidia"),
         unitCostMicroUSD=6667, unitCostUSD=0.006667, unitLabel="minute"),
    dict(name="l4x1", prettyName="Nvidia L4", cpu="8 vCPU", ram="30 GB",
         accelerator=dict(type="gpu", model="L4", quantity="1", vram="24 GB",
                          manufacturer="Nvidia"),
         unitCostMicroUSD=13333, unitCostUSD=0.013333, unitLabel="minute"),
    dict(name="l4x4", prettyName="4x Nvidia L4", cpu="48 vCPU", ram="186 GB",
         accelerator=dict(type="gpu", model="L4", quantity="4", vram="96 GB",
                          manufacturer="Nvidia"),
         unitCostMicroUSD=63333, unitCostUSD=0.063333, unitLabel="minute"),
    dict(name="a10g-largex2", prettyName="2x Nvidia A10G - large", cpu="24 vCPU", ram="92 GB",
         accelerator=dict(type="gpu", model="A10G", quantity="2", vram="48 GB",
                          manufacturer="Nvidia"),
         unitCostMicroUSD=50000, unitCostUSD=0.05, unitLabel="minute"),
    dict(name="a100-large", prettyName="Nvidia A100 - large", cpu="12 vCPU", ram="142 GB",
         accelerator=dict(type="gpu", model="A100", quantity="1", vram="80 GB",
                          manufacturer="Nvidia"),
         unitCostMicroUSD=41667, unitCostUSD=0.041667, unitLabel="minute"),
]


def _shared(method):
    """Run a FolderHub method on the folder's state, under its lock, saving what it changed."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._locked():
            self._load()
            try:
                return method(self, *args, **kwargs)
            finally:
                self._save()

    return wrapper


class FolderHub(FakeHub):
    """FakeHub's repos, plus private buckets, kept in `root` for every process to share."""

    def __init__(self, root):
        super().__init__()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.buckets = {}  # bucket id -> {"private", "owner", "files": {path: bytes}}

    @contextlib.contextmanager
    def _locked(self):
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self):
        path = self.root / "state.pickle"
        if path.is_file():
            self.repos, self.buckets, self.calls = pickle.loads(path.read_bytes())

    def _save(self):
        tmp = self.root / f".state.{os.getpid()}.tmp"
        tmp.write_bytes(pickle.dumps((self.repos, self.buckets, self.calls)))
        os.replace(tmp, self.root / "state.pickle")

    def state(self):
        """The shared state now (after the job's process changed it)."""
        with self._locked():
            self._load()
        return self

    whoami = _shared(FakeHub.whoami)
    create_repo = _shared(FakeHub.create_repo)
    repo_info = _shared(FakeHub.repo_info)
    list_repo_files = _shared(FakeHub.list_repo_files)
    create_commit = _shared(FakeHub.create_commit)
    snapshot_download = _shared(FakeHub.snapshot_download)
    delete_repo = _shared(FakeHub.delete_repo)

    def _bucket(self, user, bucket_id, write=False):
        bucket = self.buckets.get(bucket_id)
        if bucket is None or (bucket["private"] and bucket["owner"] != user):
            raise http_error(404, BucketNotFoundError)
        if write and bucket["owner"] != user:
            raise http_error(403)
        return bucket

    @_shared
    def create_bucket(self, bucket_id, *, private=None, exist_ok=False, token=None):
        user = self._enter("create_bucket", token, bucket_id, private=private)
        if bucket_id.split("/")[0] != user:
            raise http_error(403)
        if bucket_id in self.buckets and not exist_ok:
            raise http_error(409)
        self.buckets.setdefault(bucket_id, {"private": bool(private), "owner": user,
                                            "files": {}})

    @_shared
    def bucket_info(self, bucket_id, *, token=None):
        bucket = self._bucket(self._enter("bucket_info", token, bucket_id), bucket_id)
        return BucketInfo(id=bucket_id, private=bucket["private"],
                          createdAt="2026-12-01T00:00:00.000Z",
                          size=sum(map(len, bucket["files"].values())),
                          totalFiles=len(bucket["files"]))

    @_shared
    def delete_bucket(self, bucket_id, *, missing_ok=False, token=None):
        user = self._enter("delete_bucket", token, bucket_id)
        if bucket_id not in self.buckets and missing_ok:
            return
        self._bucket(user, bucket_id, write=True)
        del self.buckets[bucket_id]

    @_shared
    def batch_bucket_files(self, bucket_id, *, add=None, copy=None, delete=None, token=None):
        add, delete = list(add or []), list(delete or [])
        user = self._enter("batch_bucket_files", token, bucket_id,
                           add=[dest for _, dest in add], delete=delete)
        files = self._bucket(user, bucket_id, write=True)["files"]
        for source, dest in add:
            files[dest] = source if isinstance(source, bytes) else Path(source).read_bytes()
        for path in delete:
            files.pop(path, None)

    @_shared
    def list_bucket_tree(self, bucket_id, prefix=None, *, recursive=None, token=None):
        user = self._enter("list_bucket_tree", token, bucket_id, prefix=prefix)
        files = self._bucket(user, bucket_id)["files"]
        return [self._file(path, data) for path, data in sorted(files.items())
                if prefix is None or path.startswith(prefix.rstrip("/") + "/")]

    @_shared
    def download_bucket_files(self, bucket_id, files, *, raise_on_missing_files=False,
                              token=None):
        user = self._enter("download_bucket_files", token, bucket_id,
                           paths=[getattr(remote, "path", remote) for remote, _ in files])
        stored = self._bucket(user, bucket_id)["files"]
        for remote, local in files:
            path = getattr(remote, "path", remote)
            if path not in stored:
                if raise_on_missing_files:
                    raise EntryNotFoundError(f"{path} not found in bucket {bucket_id}")
                continue
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            Path(local).write_bytes(stored[path])

    @staticmethod
    def _file(path, data):
        return BucketFile(type="file", path=path, size=len(data),
                          xetHash=hashlib.sha256(data).hexdigest())


def install_in_job(root):
    """In a job's process: every Hub call goes to the FolderHub at `root`."""
    from huggingface_hub import constants

    from pipeline.hub import calls

    constants.HF_HUB_OFFLINE = False
    calls.hf_api = lambda: FolderHub(root)


class FakeJob:
    """One job: its spec, its log file, and its process (None when not executed)."""

    def __init__(self, job_id, owner, spec, log):
        self.id, self.owner, self.spec, self.log = job_id, owner, spec, log
        self.process = None
        self.stage = None  # set when the service ends it: CANCELED, ERROR, COMPLETED
        self.message = None
        self.started = time.monotonic()
        self.running_secs = None
        self.timer = None

    def current(self):
        """(stage, message) now."""
        if self.stage is not None:
            return self.stage, self.message
        if self.process is None:
            return "SCHEDULING", None
        code = self.process.poll()
        if code is None:
            return "RUNNING", None
        return ("COMPLETED", None) if code == 0 else ("ERROR", f"exit code {code}")


class FakeJobs(FolderHub):
    """Hugging Face Jobs for the test's own process (a FolderHub for everything else).

    With `execute` a job runs its command at once; without, it stays SCHEDULING until the test
    ends it (`finish`). `crash`, `expire` and `vanish` do to a running job what a failing
    machine, the time limit and a deletion on the Hub would."""

    def __init__(self, root, *, execute=True, threads=1):
        super().__init__(Path(root) / "hub")
        self.folder = Path(root) / "jobs"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "site").mkdir(exist_ok=True)
        (self.folder / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.execute, self.threads = execute, threads
        self.jobs = {}
        self.job_calls = []  # (method, token, details); the Hub's own calls are in .calls

    def _enter_job(self, method, token, **details):
        self.job_calls.append((method, token, details))
        if self.queued.get(method):
            raise self.queued[method].pop(0)
        if token not in self.users:
            raise http_error(401)
        return self.users[token]

    def list_jobs_hardware(self, token=None):
        self._enter_job("list_jobs_hardware", token)
        return [JobHardwareInfo(**info) for info in HARDWARE]

    def run_job(self, *, image, command, env=None, secrets=None, flavor=None, timeout=None,
                name=None, labels=None, namespace=None, token=None, **ignored):
        user = self._enter_job("run_job", token, image=image, command=command, env=env,
                           secrets=sorted(secrets or {}), flavor=flavor, timeout=timeout,
                           name=name, labels=labels)
        if namespace not in (None, user):
            raise http_error(403)
        job_id = f"{len(self.jobs) + 1:024x}"
        spec = dict(image=image, command=list(command), env=dict(env or {}),
                    secrets=dict(secrets or {}), flavor=flavor, timeout=timeout, name=name,
                    labels=dict(labels or {}))
        job = FakeJob(job_id, user, spec, self.folder / f"{job_id}.log")
        job.log.write_text("")
        self.jobs[job_id] = job
        if self.execute:
            self._run(job)
        return self._info(job)

    def inspect_job(self, *, job_id, namespace=None, token=None):
        return self._info(self._job(self._enter_job("inspect_job", token, job_id=job_id),
                                    job_id))

    def fetch_job_logs(self, *, job_id, namespace=None, follow=False, tail=None, token=None):
        job = self._job(self._enter_job("fetch_job_logs", token, job_id=job_id,
                                        follow=follow), job_id)
        if not follow:
            lines = job.log.read_text().splitlines()
            return iter(lines[-tail:] if tail else lines)
        return self._follow(job)

    def cancel_job(self, *, job_id, namespace=None, token=None):
        job = self._job(self._enter_job("cancel_job", token, job_id=job_id), job_id)
        if job.current()[0] in ("SCHEDULING", "RUNNING"):
            self._stop(job, "CANCELED", None, signal.SIGTERM)

    # What the service does by itself, for tests to trigger.

    def crash(self, job_id):
        self._stop(self.jobs[job_id], "ERROR", "exit code 137", signal.SIGKILL)

    def expire(self, job_id):
        job = self.jobs[job_id]
        self._stop(job, "ERROR", "Job timeout", signal.SIGKILL)
        job.running_secs = job.spec["timeout"]

    def vanish(self, job_id):
        self._stop(self.jobs[job_id], "DELETED", None, signal.SIGKILL)
        del self.jobs[job_id]

    def finish(self, job_id, stage, message=None):
        self.jobs[job_id].stage, self.jobs[job_id].message = stage, message

    def wait(self, job_id, timeout=300):
        job = self.jobs[job_id]
        if job.process is not None:
            job.process.wait(timeout=timeout)

    def log(self, job_id):
        return self.jobs[job_id].log.read_text()

    def close(self):
        for job in self.jobs.values():
            if job.timer is not None:
                job.timer.cancel()
            if job.process is not None and job.process.poll() is None:
                job.process.kill()
                job.process.wait()

    def _run(self, job):
        home = self.folder / job.id
        (home / "tmp").mkdir(parents=True)
        environment = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                       "HOME": str(home), "TMPDIR": str(home / "tmp"),
                       "PYTHONPATH": os.pathsep.join(map(str, (self.folder / "site", TESTS, ROOT))),
                       "FAKE_HUB_DIR": str(self.root), "HF_HUB_OFFLINE": "1",
                       "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": str(self.threads),
                       "PYTHONUNBUFFERED": "1", **job.spec["env"], **job.spec["secrets"]}
        with open(job.log, "ab") as log:
            job.process = subprocess.Popen(job.spec["command"], env=environment, cwd=ROOT,
                                           stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        if job.spec["timeout"]:
            job.timer = threading.Timer(job.spec["timeout"], self.expire, [job.id])
            job.timer.daemon = True
            job.timer.start()

    def _stop(self, job, stage, message, sig):
        if job.process is not None and job.process.poll() is None:
            os.killpg(job.process.pid, sig)  # the whole job: accelerate's workers too
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(job.process.pid, signal.SIGKILL)
                job.process.wait()
        job.stage, job.message = stage, message

    def _follow(self, job):
        with open(job.log, encoding="utf-8", errors="replace") as log:
            partial = ""
            while True:
                chunk = log.readline()
                if chunk:
                    partial += chunk
                    if partial.endswith("\n"):
                        yield partial.rstrip("\n")
                        partial = ""
                elif job.current()[0] not in ("SCHEDULING", "RUNNING"):
                    rest = partial + log.read()
                    yield from rest.splitlines()
                    return
                else:
                    time.sleep(0.05)

    def _job(self, user, job_id):
        job = self.jobs.get(job_id)
        if job is None or job.owner != user:
            raise http_error(404)
        return job

    def _info(self, job):
        stage, message = job.current()
        running = job.running_secs
        if running is None and job.process is not None:
            running = int(time.monotonic() - job.started)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return JobInfo(id=job.id, createdAt=created,
                       dockerImage=job.spec["image"], command=job.spec["command"],
                       arguments=[], environment=job.spec["env"],
                       secrets={name: "<hidden>" for name in job.spec["secrets"]},
                       flavor=job.spec["flavor"], labels=job.spec["labels"],
                       status={"stage": stage, "message": message},
                       durations={"runningSecs": running},
                       owner={"id": "0" * 24, "name": job.owner, "type": "user"},
                       endpoint="https://huggingface.co")
