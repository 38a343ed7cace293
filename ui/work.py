"""The work panel under the banner: the parent's long work (training, illustrating) while it
runs, whichever tab is open and after closing and reopening the page, with a Cancel button;
and work that ended while nobody watched, with its outcome.

Public API: /current_work and /cancel_work (gr.api).
"""
from typing import Optional

import gradio as gr

from pipeline.actions import work
from pipeline.settings import Settings
from ui.auth import Caller, signed_in
from ui.common import LIGHT, PRIVATE, escape_md, own_choice, public

FOLLOW_SECONDS = 3  # how often an open page looks at the work again
MARKS = {"running": "⏳", "done": "✅", "failed": "⚠️", "cancelled": "✋",
         "stopped": "⏸️"}
WHERE = {"training": "the **Train** tab shows it", "illustration": "the **Story** tab shows it"}
AGAIN = {"training": "press **Start or continue training** to go on from its last checkpoint, "
                     "if it saved one",
         "illustration": "press **Illustrate all pages** to draw the rest"}


def current_work(caller: Caller) -> list[dict]:
    """Your running work (training, illustrating) with its latest progress, and work that
    ended without being shown, with its outcome: id, kind, subject, title, state, progress,
    message, result."""
    return [job.to_json() for job in work.current_work(caller.settings, caller.user)]


def cancel_work(caller: Caller, job_id: str) -> dict:
    """Ask running work to stop: it does at its next progress report (a training step, a
    class image, a page), keeping what is saved (pages drawn, checkpoints).

    Args:
        job_id: the work's id (from /current_work)
    """
    return work.cancel_work(caller.settings, caller.user, job_id or "").to_json()


def follow(caller: Optional[Caller], shown: list, last: str):
    """The panel, the running work to cancel, and the ids shown. Work that ended and was
    shown on the previous look counts as seen from now on (a page that opens later no longer
    shows it; the Train tab reads it on load first)."""
    if caller is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), shown, last
    jobs = {job.id: job for job in work.current_work(caller.settings, caller.user)}
    for job_id in shown:
        if job_id not in jobs:
            continue
        if not jobs[job_id].running and not jobs[job_id].seen:
            work.mark_seen(caller.settings, caller.user, job_id)
    listed = list(jobs.values()) + [job for job in _ended(caller, shown) if job.id not in jobs]
    text = "\n".join(_line(job) for job in listed)
    running = [(job.title, job.id) for job in listed if job.running and not job.cancel]
    ids = [job.id for job in listed]
    if text == last:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), ids, last
    chooser = gr.update(choices=running, value=running[0][1] if running else None)
    return gr.update(visible=bool(listed)), text, gr.update(visible=bool(running)), chooser, \
        ids, text


def _ended(caller: Caller, shown: list) -> list:
    """The work this page showed that has ended since (seen or not)."""
    found = []
    for job_id in shown:
        try:
            found.append(work.get_work(caller.settings, caller.user, job_id))
        except ValueError:  # forgotten meanwhile
            continue
    return found


def _line(job: work.Job) -> str:
    line = f"- {MARKS.get(job.state, '')} {escape_md(job.describe())}"
    if job.state == "done" and job.kind in WHERE:
        line += f": {WHERE[job.kind]}"
    elif job.state in ("failed", "cancelled", "stopped") and job.kind in AGAIN:
        line += f"; {AGAIN[job.kind]}"
    return line


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The panel (hidden while there is no work) and its events."""
    with gr.Column(visible=False, elem_classes="tw-notice") as box:
        panel = gr.Markdown()
        with gr.Row(equal_height=True, visible=False) as cancel_row:
            to_cancel = own_choice("Running", "18eedefc86daededc3b459e1", scale=3)
            cancel_button = gr.Button("Cancel it", size="sm", variant="stop", scale=1)
        cancelled = gr.JSON(visible=False)
    shown, last = gr.State([]), gr.State("")
    timer = gr.Timer(FOLLOW_SECONDS)
    listing, cancelling = signed_in(settings, current_work), signed_in(settings, cancel_work)
    gr.api(listing, **public(listing, "current_work"), **LIGHT)  # never behind GPU work
    looking = signed_in(settings, follow, quiet=True)
    outputs = [box, panel, cancel_row, to_cancel, shown, last]
    demo.load(looking, [shown, last], outputs, **PRIVATE, **LIGHT)
    timer.tick(looking, [shown, last], outputs, queue=False, show_progress="hidden", **PRIVATE)
    cancel_button.click(cancelling, to_cancel, cancelled,
                        **public(cancelling, "cancel_work"), **LIGHT).success(
        looking, [shown, last], outputs, **PRIVATE, **LIGHT)
