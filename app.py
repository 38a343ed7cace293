"""Taleweaver's Gradio app: UI wiring onto the pipeline package, no ML logic here."""
from __future__ import annotations

import gradio as gr

from pipeline.settings import Settings

SETTINGS = Settings.from_env()


def build_ui(settings: Settings) -> gr.Blocks:
    """The app's Blocks; building it loads no model."""
    with gr.Blocks(title="Taleweaver") as demo:
        gr.Markdown("# Taleweaver\nIllustrated storybooks starring your own family.")
        gr.Markdown(f"Base model: `{settings.base_model}`")
    return demo


demo = build_ui(SETTINGS)

if __name__ == "__main__":
    demo.launch()
