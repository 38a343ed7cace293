"""The lines a training job prints for the app to read in its logs: progress, the result, or
why it failed. One JSON object per line after a fixed tag; every other log line (libraries,
downloads) is ignored.

    @taleweaver progress {"done": 120, "total": 400, "unit": "step", "loss": 0.08, ...}
    @taleweaver result {"step": 400, "total": 400, "repo_id": "alice/taleweaver-mia", ...}
    @taleweaver error {"message": "the GPU ran out of memory ..."}
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from ..progress import Progress

TAG = "@taleweaver"
KINDS = ("progress", "result", "error")


def progress_line(progress: Progress) -> str:
    return _line("progress", dataclasses.asdict(progress))


def result_line(result: dict[str, Any]) -> str:
    return _line("result", result)


def error_line(message: str) -> str:
    return _line("error", {"message": message})


def parse(line: str) -> Optional[tuple[str, Any]]:
    """(kind, payload) of one of our lines: a Progress for "progress", a dict for "result",
    the message for "error"; None for any other line, or one of ours that is damaged."""
    tag, _, rest = line.strip().partition(" ")
    kind, _, text = rest.partition(" ")
    if tag != TAG or kind not in KINDS:
        return None
    try:
        payload = json.loads(text)
        if kind == "progress":
            return kind, Progress(**payload)
        if kind == "error":
            return kind, str(payload["message"])
    except (ValueError, TypeError, KeyError):
        return None
    return (kind, payload) if isinstance(payload, dict) else None


def _line(kind: str, payload: dict[str, Any]) -> str:
    return f"{TAG} {kind} {json.dumps(payload, ensure_ascii=False)}"
