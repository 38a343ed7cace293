"""Memory under many API sessions: N light calls against the app on 127.0.0.1, each from a
new session (as many API users each making a call), printing the app's RSS before and after
and its growth per call.

    python bench/soak.py [--calls 1500] [--seconds 300] [--endpoint list_books]
    python bench/soak.py --url http://127.0.0.1:7860 --pid 12345   # an app already running

Without --url it starts `python app.py` (tiny test model, no sign-in, a temporary data
folder) and stops it at the end. Each call is gradio's REST route (POST /gradio_api/call/NAME,
then its result), which opens a fresh session every time. It stops after --calls calls or
--seconds seconds, whichever comes first; RSS is read from /proc (Linux).
"""
from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_start import ROOT, environment, free_port  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def light_call(client: httpx.Client, url: str, endpoint: str) -> None:
    """One call of a listing endpoint as a new API session, through its result."""
    start = client.post(f"{url}/gradio_api/call/{endpoint}", json={"data": []})
    start.raise_for_status()
    event_id = start.json()["event_id"]
    with client.stream("GET", f"{url}/gradio_api/call/{endpoint}/{event_id}") as answer:
        for line in answer.iter_lines():
            if line.startswith("event: error"):
                raise RuntimeError(f"/{endpoint} answered an error")
            if line.startswith("event: complete"):
                return


@contextlib.contextmanager
def started_app(model: str | None) -> Iterator[tuple[str, int]]:
    """`python app.py` with the tiny model (or `model`) on a free port: (url, pid)."""
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            sys.path.insert(0, str(ROOT))
            from pipeline.testing import save_tiny_model

            model = str(save_tiny_model(Path(tmp) / "tiny"))
        port = free_port()
        env = environment(model, str(Path(tmp) / "data"), port)
        server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"python app.py exited with {server.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/gradio_api/info", timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("the app did not answer within 300 s")
                time.sleep(0.2)
            yield url, server.pid
        finally:
            server.terminate()
            server.wait(30)


def soak(url: str, pid: int, calls: int, seconds: float, endpoint: str, warmup: int) -> None:
    with httpx.Client(timeout=60) as client:
        for _ in range(warmup):  # the first calls allocate once-only things (caches, pools)
            light_call(client, url, endpoint)
        time.sleep(1)
        before = rss_mb(pid)
        started, done, failed = time.monotonic(), 0, 0
        while done < calls and time.monotonic() - started < seconds:
            try:
                light_call(client, url, endpoint)
            except (httpx.HTTPError, RuntimeError) as err:
                failed += 1
                print(f"call {done + 1} failed: {err}", file=sys.stderr)
            done += 1
        elapsed = time.monotonic() - started
        time.sleep(2)  # let the app finish what the last calls left to do
        after = rss_mb(pid)
    growth = after - before
    print(f"/{endpoint}: {done} calls ({failed} failed), each a new session, in {elapsed:.0f} s "
          f"({done / elapsed:.1f} calls/s) after {warmup} warm-up calls")
    print(f"app RSS: {before:.1f} MB before, {after:.1f} MB after: {growth:+.1f} MB, "
          f"{1024 * growth / max(done, 1):+.1f} KB per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="at most this many calls")
    parser.add_argument("--seconds", type=float, default=300, help="at most this long")
    parser.add_argument("--endpoint", default="list_books",
                        help="a light endpoint without inputs (list_books, list_characters)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--url", help="an app already running (give its --pid too)")
    parser.add_argument("--pid", type=int, help="the process id of the app at --url")
    parser.add_argument("--model", help="base model folder for the started app (default: tiny)")
    args = parser.parse_args()
    if args.url:
        if args.pid is None:
            parser.error("--url needs --pid (the app's process, whose memory is measured)")
        soak(args.url.rstrip("/"), args.pid, args.calls, args.seconds, args.endpoint,
             args.warmup)
        return
    with started_app(args.model) as (url, pid):
        soak(url, pid, args.calls, args.seconds, args.endpoint, args.warmup)


if __name__ == "__main__":
    main()
