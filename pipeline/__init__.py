"""Taleweaver's engine: photos to characters, characters to LoRA adapters, stories to books.

Importable and usable without Gradio; app.py and cli.py are thin front doors onto it.
"""
