"""Taleweaver's Gradio app: four tabs (Characters, Train, Story, Gallery), sign-in with Hugging
Face on a Space, and a public API with the same functions (see the README for gradio_client).

    python app.py                      # loads the base model while building the UI, then serves on :7860

Importing this module builds the UI and loads no model, so tests can launch it in-process.
UI wiring only: the engine is the `pipeline` package; the tabs are in `ui/`.
"""
from typing import Optional

import gradio as gr

from pipeline.actions.system import use_cpu_threads, machine, preload_in_background
from pipeline.settings import Settings
from ui import characters, gallery, story, train
from ui.auth import oauth_configured, show_login_button, sign_in_required
from ui.common import PRIVATE, escape_md

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


def launch_options() -> dict:
    """What `launch()` takes besides the address (Gradio 6: theme and CSS go there)."""
    return {"theme": THEME, "css": CSS, "run_history": False,
            "footer_links": ["api", "gradio", "settings"]}


def build_ui(settings: Settings) -> gr.Blocks:
    """The app's Blocks: building it loads no model and reads no user's data."""

    def banner(profile: Optional[gr.OAuthProfile] = None) -> dict:
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
        if not here.has_gpu:
            notes.append(f"**No GPU on this machine.** Everything works, on the CPU, with the "
                         f"model {escape_md(here.model)}; real SDXL training and "
                         "pictures need a GPU (a ZeroGPU or GPU Space, or your own GPU).")
        elif here.zerogpu:
            notes.append("Running on ZeroGPU: training goes on in slices of GPU time, one "
                         "after another, without further clicks. The Train tab shows the GPU "
                         "time a character needs before it starts.")
        return gr.update(value="\n\n".join(notes), visible=bool(notes))

    with gr.Blocks(title="Taleweaver", delete_cache=(1800, 3600)) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(HEADER, elem_classes="tw-header")
            if show_login_button(settings):
                gr.LoginButton(scale=0, min_width=240)
        notice = gr.Markdown(visible=False, elem_classes="tw-notice")
        with gr.Tabs():
            characters.build(settings, demo)
            train.build(settings, demo)
            story.build(settings, demo)
            gallery.build(settings, demo)
        demo.load(banner, None, notice, **PRIVATE)
    return demo


SETTINGS = Settings.from_env()
if __name__ == "__main__":  # the base model loads while the UI is built
    use_cpu_threads(SETTINGS)
    PRELOADING = preload_in_background(SETTINGS)
demo = build_ui(SETTINGS)

if __name__ == "__main__":
    no_drafts = PRELOADING.result()  # before launch: on ZeroGPU, outside any GPU call
    if no_drafts:
        print(f"Story drafting is unavailable: {no_drafts}")
    demo.launch(**launch_options())
