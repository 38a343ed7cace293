"""Taleweaver's Gradio app: four tabs (Characters, Train, Story, Gallery), sign-in with Hugging
Face on a Space, and a public API with the same functions (see the README for gradio_client).

    python app.py          # loads the base model while building the UI, then serves on :7860

Where the base model can't be loaded, `python app.py` still starts: in demo mode, on the tiny
test model, with a banner that says so and a log line for whoever runs it.
Importing this module builds the UI and loads no model, so tests can launch it in-process.
UI wiring only: the engine is the `pipeline` package; the tabs are in `ui/`.
"""
import logging
import os
from typing import Optional

# gradio keeps a record of its last N events for its monitoring page (10,000 by default, a few
# MB); a thousand is plenty here. Read when the queue starts, so set before launch.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr  # noqa: E402

from pipeline.actions.system import (Startup, machine, start_in_background,  # noqa: E402
                                     use_cpu_threads)
from pipeline.settings import Settings  # noqa: E402
from ui import characters, gallery, story, train, work  # noqa: E402
from ui.auth import oauth_configured, show_login_button, sign_in_required, upload_gate  # noqa: E402
from ui.common import PRIVATE, escape_md, named_input_errors  # noqa: E402

log = logging.getLogger("taleweaver")
THEME = gr.themes.Soft(primary_hue="amber", secondary_hue="rose", neutral_hue="stone")
CSS = """
.tw-header h1 { margin-bottom: 0; }
.tw-reader { max-width: 760px; margin: 0 auto; }
.tw-title { text-align: center; font-size: 2rem; margin: 0.5rem 0; }
.tw-page-text { text-align: center; font-size: 1.35rem; line-height: 1.5; padding: 0.5rem 1rem; }
.tw-where { text-align: center; }
.tw-notice { background: #fff7e6; border: 1px solid #f5d08a; border-radius: 8px;
             padding: 0.4rem 0.9rem; }
.tw-pages button[aria-label="Add row"], .tw-pages .add-row-button { display: none; }
.toast-message-text, .toast-msg { white-space: pre-line; }
h3 > .desc { white-space: pre-line; }  /* the API page: one line per parameter (ui.common.public) */
.tw-table table, .tw-table th, .tw-table td, .tw-table .cell-wrap, .tw-table span {
    font-family: var(--font); }
"""
HEADER = """\
# Taleweaver
Illustrated storybooks starring your own family: **1** add each character from a few photos,
**2** train it, **3** write the story, **4** read it and download the PDF."""


def launch_options(settings: Settings) -> dict:
    """What `launch()` takes besides the address (Gradio 6: theme and CSS go there): uploads
    refused past the size limit (gradio's max_file_size while it reads, and the upload gate
    before, which also wants sign-in where it is required), and at most
    TALEWEAVER_MAX_SESSIONS sessions kept. gradio keeps a copy of every component's settings
    for each session, about 0.2 MB for this app, and by default for 10,000 sessions: every
    API call without a session of its own opens one, so memory grew with each call."""
    return {"theme": THEME, "css": CSS, "run_history": False,
            "footer_links": ["api", "gradio", "settings"],
            "max_file_size": settings.max_upload_bytes,
            "state_session_capacity": settings.max_sessions,
            "app_kwargs": {"middleware": [upload_gate(settings)]}}


DEMO = ("**Demo mode.** The picture model (SDXL) could not be loaded on this server, so the "
        "app runs on a tiny test model: it draws coloured noise, not pictures, but every step "
        "works, in seconds, so you can try the whole app. For real pictures, run Taleweaver "
        "with a GPU: as a Hugging Face Space on ZeroGPU or a GPU, with training on Hugging Face "
        "Jobs, or on your own computer with an NVIDIA GPU, where the model can be downloaded. "
        "(Whoever runs this server finds the reason in its log.)")
TEST_MODEL = ("**Test model.** This server runs on a tiny test model: it draws coloured noise, "
              "not pictures, so that every step can be tried in seconds.")
NO_GPU = ("**No GPU on this machine.** Everything works on the CPU with {model}, but slowly: "
          "each picture takes minutes, even drawn smaller and in fewer steps as it is here (the "
          "Story tab's picture options show what is in force), and training a character takes "
          "hours. For real speed use a GPU: a ZeroGPU or GPU Space, Hugging Face Jobs, or your "
          "own GPU.")
NO_SAFETY = ("**No pictures on this server right now.** Every picture passes a safety check "
             "before anyone sees it, and that check can't run here, so nothing is drawn; "
             "everything else works. (Whoever runs this server finds the reason in its log.)")
ZEROGPU = ("Running on ZeroGPU: training goes on in slices of GPU time, one after another, "
           "without further clicks. The Train tab shows the GPU time a character needs before "
           "it starts.")


def banner(settings: Settings, startup: Optional[Startup] = None,
           profile: Optional[gr.OAuthProfile] = None) -> str:
    """The notice at the top of the page: sign-in, demo mode, where the work runs, and that no
    picture can be drawn where the safety check can't run."""
    notes = []
    if sign_in_required(settings) and not oauth_configured():
        notes.append("This app keeps each visitor's photos and books apart, but has no "
                     "*Sign in with Hugging Face* here: use its API with your own Hugging "
                     "Face token (`Client(url, oauth_token=\"hf_...\")`).")
    elif sign_in_required(settings) and profile is None:
        notes.append("**Sign in with Hugging Face** (top right) to begin: your photos, "
                     "characters and books are private to you, and your adapters go to "
                     "private repos in your own account.")
    here = machine(settings)
    if startup is not None and startup.demo:
        notes.append(DEMO)
    elif here.test_model:
        notes.append(TEST_MODEL)
    elif not here.has_gpu:
        notes.append(NO_GPU.format(model=escape_md(here.model)))
    if here.zerogpu:
        notes.append(ZEROGPU)
    if startup is not None and startup.no_safety:
        notes.append(NO_SAFETY)
    return "\n\n".join(notes)


def build_ui(settings: Settings, startup: Optional[Startup] = None) -> gr.Blocks:
    """The app's Blocks: building it loads no model and reads no user's data. `startup` says
    how `start` went (demo mode), for the banner."""

    def show_banner(profile: Optional[gr.OAuthProfile] = None) -> dict:
        notes = banner(settings, startup, profile)
        return gr.update(value=notes, visible=bool(notes))

    with gr.Blocks(title="Taleweaver", delete_cache=(1800, 3600)) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(HEADER, elem_classes="tw-header")
            if show_login_button(settings):
                gr.LoginButton(scale=0, min_width=240)
        notice = gr.Markdown(visible=False, elem_classes="tw-notice")
        work.build(settings, demo)
        with gr.Tabs():
            characters.build(settings, demo)
            train.build(settings, demo)
            story.build(settings, demo)
            gallery.build(settings, demo)
        demo.load(show_banner, None, notice, **PRIVATE)
    named_input_errors(demo)
    return demo


SETTINGS = Settings.from_env()
if __name__ == "__main__":  # the base model loads while the UI is built
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    use_cpu_threads(SETTINGS)
    STARTING = start_in_background(SETTINGS)
demo = build_ui(SETTINGS)

if __name__ == "__main__":
    started = STARTING.result()  # before launch: on ZeroGPU, outside any GPU call
    if started.demo:
        log.warning("DEMO MODE: the base model could not be loaded (%s). The app runs on the "
                    "tiny test model in %s instead, with %d px training crops; set "
                    "TALEWEAVER_BASE_MODEL to a model this machine can load for real pictures.",
                    started.demo_reason, started.settings.base_model,
                    started.settings.resolution)
    if started.demo or started.no_safety:  # the banner says so
        demo = build_ui(started.settings, started)
    if started.no_drafts:
        log.warning("Story drafting is unavailable (the app shows it disabled): %s",
                    started.no_drafts)
    if started.no_safety:
        log.warning("The picture safety check is unavailable, so no picture can be drawn: %s",
                    started.no_safety)
    demo.launch(**launch_options(started.settings))
