"""How fast the app starts: importing app.py (which builds the UI), and `python app.py` (which
preloads the base model) until the page and the API first answer.

    python bench/app_start.py [--runs 3] [--model DIR]

Each run is a fresh Python process. Without --model the tiny test model is built in a
temporary folder; the base model's load time is part of "first response" (on a real SDXL
that is dominated by reading about 7 GB of weights).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
IMPORT = ("import time; t = time.perf_counter(); import app; "
          "print(time.perf_counter() - t)")


def environment(model: str, data_dir: str, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALEWEAVER_")}
    env.update(TALEWEAVER_BASE_MODEL=model, TALEWEAVER_VAE="", TALEWEAVER_DATA_DIR=data_dir,
               TALEWEAVER_REQUIRE_LOGIN="never", GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def import_seconds(env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", IMPORT], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def launch_seconds(env: dict, port: int, timeout: float = 300) -> tuple[float, float]:
    """Seconds from `python app.py` to the page's first answer, and to the first API answer."""
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        page = _first_answer(f"{url}/", started, timeout, server)
        api = _first_answer(f"{url}/gradio_api/info", started, timeout, server)
        return page, api
    finally:
        server.terminate()
        server.wait(30)


def _first_answer(url: str, started: float, timeout: float, server: subprocess.Popen) -> float:
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"python app.py exited with {server.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", help="base model folder (default: a fresh tiny model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            sys.path.insert(0, str(ROOT))
            from pipeline.testing import save_tiny_model

            model = str(save_tiny_model(Path(tmp) / "tiny"))
        imports, pages, apis = [], [], []
        for _ in range(args.runs):
            port = free_port()
            env = environment(model, str(Path(tmp) / "data"), port)
            imports.append(import_seconds(env))
            page, api = launch_seconds(env, port)
            pages.append(page)
            apis.append(api)
    print(f"model: {args.model or 'tiny test model'}; median of {args.runs} runs, "
          "each a fresh process")
    print(f"import app.py (builds the UI, loads no model): {statistics.median(imports):.2f} s")
    print(f"python app.py -> first page response:          {statistics.median(pages):.2f} s")
    print(f"python app.py -> first API response:           {statistics.median(apis):.2f} s")


if __name__ == "__main__":
    main()
