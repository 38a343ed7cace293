"""The Gradio app's tabs: UI wiring onto the pipeline package (no ML, no file formats here)."""
