"""Characters tab: a person or pet from a few photos, the verdict on each photo with the crops
kept for training, the user's characters, delete.

Public API: /add_character, /delete_character (events) and /list_characters (gr.api).
"""
from typing import Optional

import gradio as gr

from pipeline.actions import characters
from pipeline.settings import Settings
from ui.auth import Caller, hub_advice, signed_in
from ui.common import (LIGHT, PRIVATE, STATUS_HEIGHT, choices, escape_md, forget_uploads,
                       own_choice, picture, progress_bar, public)

KINDS = ["girl", "boy", "baby", "woman", "man", "grandma", "grandpa", "dog", "cat", "toy"]
PHOTO_TYPES = ["image", ".heic", ".heif"]
TABLE_HEADERS = ["Name", "Kind", "Look", "Photos", "Trained", "Hub repo"]
REPORT_HEADERS = ["#", "Photo", "Verdict", "Notes"]
HUB_TOO_LABEL = "Also delete its private Hugging Face repo"
INTRO = """\
Add each person or pet of your story with **3 to 20 photos** (about 8 is best): the same person,
sharp, in good light, from different angles and days, the face clearly visible. Photos straight
from a phone are fine (JPEG, HEIC, PNG, WebP). Only square crops are kept, never your uploads
unless you ask."""


def add_character(caller: Caller, name: str, kind: str, description: str,
                  photos: Optional[list[str]], keep_originals: bool = False,
                  progress=gr.Progress()) -> dict:
    """Make a character from 3 to 20 photos of one person or pet; each photo gets a verdict.

    Nothing is saved when fewer than 3 photos can be used; the error names each photo and
    the reason. The uploaded files are deleted from the server either way.

    Args:
        name: the character's name, e.g. Mia
        kind: who it is: girl, boy, woman, man, baby, dog, cat, or a few words
        description: the look every page reuses, e.g. "curly red hair" (may be empty)
        photos: photo files (JPEG, PNG, HEIC, WebP, GIF, BMP, TIFF)
        keep_originals: also keep the uploaded files (by default only the crops are kept)
    """
    try:
        added = characters.add_character(
            caller.settings, caller.user, name or "", kind or "", description or "",
            photos or [], keep_originals=bool(keep_originals), on_progress=progress_bar(progress))
    finally:
        forget_uploads(photos or [])
    return added.to_json()


def list_characters(caller: Caller) -> list[dict]:
    """Your characters: name, kind, look, photos, trigger token, trained or not, Hub repo."""
    return [row.to_json() for row in characters.list_characters(caller.settings, caller.user)]


def delete_character(caller: Caller, name: str, delete_hub_repo: bool = False) -> dict:
    """Delete a character with its photos, crops, checkpoints and adapter on this machine.

    Args:
        name: the character's name
        delete_hub_repo: also delete its private Hub repo; that goes first, and if it
            fails nothing is deleted
    """
    try:
        deleted = characters.delete_character(caller.settings, caller.user, name or "",
                                              caller.token, with_repo=bool(delete_hub_repo))
    except characters.RepoNotDeleted as err:
        advice = hub_advice(caller.settings, err.result.reason, "delete again")
        by_hand = (f"{'Or' if advice else 'You can'} delete the repo on huggingface.co (its "
                   f'settings page), then here with "{HUB_TOO_LABEL}" unticked.')
        raise ValueError(" ".join(filter(None, [str(err), advice, by_hand]))) from None
    return deleted.to_json()


def refresh(caller: Optional[Caller], current: Optional[str]):
    """The table of the user's characters and the delete dropdown."""
    rows = characters.list_characters(caller.settings, caller.user) if caller else []
    table = [[r.name, r.kind, r.description, r.photos, "yes" if r.trained else "not yet",
              r.hub_repo or "-"] for r in rows]
    names = [(r.name, r.name) for r in rows]
    return gr.update(value=table, visible=bool(rows)), gr.update(visible=not rows), \
        choices(names, current)


def show_added(caller: Optional[Caller], result: dict):
    """The verdict on each photo and the crops kept, after a character is saved."""
    if not result or caller is None:
        return gr.update(), gr.update(), gr.update()
    name = result["character"]["name"]
    reports = result["photos"]
    rows = [[r["index"], r["source"], "accepted" if r["accepted"] else r["message"],
             "; ".join(r["warnings"])] for r in reports]
    crops = [(picture(path), source)
             for path, source in characters.crop_files(caller.settings, caller.user, name)]
    used = sum(r["accepted"] for r in reports)
    message = (f"Saved **{escape_md(name)}** ({escape_md(result['character']['kind'])}) with "
               f"{used} of {len(reports)} photos. Next: train {escape_md(name)} in the "
               "**Train** tab.")
    return message, gr.update(value=rows, visible=True), gr.update(value=crops, visible=True)


def show_deleted(result: dict) -> str:
    if not result:
        return ""
    hub_line = f" {escape_md(result['hub']['message'])}" if result.get("hub") else ""
    return (f"Deleted **{escape_md(result['deleted'])}** with its photos, crops and "
            f"adapter.{hub_line}")


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Characters tab and its events (inside the app's gr.Tabs)."""
    with gr.Tab("1 · Characters", id="characters") as tab:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                name = gr.Textbox(label="Name", placeholder="Mia", max_length=60)
                kind = gr.Dropdown(KINDS, value="girl", label="Who is it?",
                                   allow_custom_value=True,
                                   info="Pick one, or type a word or two (e.g. golden retriever)")
                description = gr.Textbox(label="Look (optional)", max_length=300,
                                         placeholder="curly red hair, yellow raincoat",
                                         info="Shown on every page this character is on")
                keep = gr.Checkbox(label="Also keep the original photos", value=False)
            with gr.Column(scale=3):
                photos = gr.File(label="Photos (drag and drop several at once)",
                                 file_count="multiple", file_types=PHOTO_TYPES, height=260)
        add_button = gr.Button("Add character", variant="primary")
        added = gr.JSON(visible=False)
        added_note = gr.Markdown(min_height=STATUS_HEIGHT)
        report = gr.Dataframe(headers=REPORT_HEADERS, label="Each photo", interactive=False,
                              visible=False, wrap=True, column_widths=["6%", "24%", "35%", "35%"],
                              elem_classes="tw-table")
        crops = gr.Gallery(label="Crops kept for training", columns=8, height=210,
                           visible=False, object_fit="contain", fit_columns=False,
                           allow_preview=True, buttons=["fullscreen"])
        gr.Markdown("### Your characters")
        none_yet = gr.Markdown("No characters yet: add one above.")
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, visible=False, wrap=True,
                             elem_classes="tw-table")
        with gr.Accordion("Delete a character", open=False):
            with gr.Row(equal_height=True):
                to_delete = own_choice("Character", "Mia")
                hub_too = gr.Checkbox(label=HUB_TOO_LABEL)
                delete_button = gr.Button("Delete", variant="stop")
            deleted = gr.JSON(visible=False)
            deleted_note = gr.Markdown()
        listed = signed_in(settings, list_characters)
        gr.api(listed, **public(listed, "list_characters"), **LIGHT)

    listing = [table, none_yet, to_delete]
    adding = signed_in(settings, add_character)
    quiet_refresh = signed_in(settings, refresh, quiet=True)
    added_event = add_button.click(adding, [name, kind, description, photos, keep], added,
                                   show_progress_on=added_note,  # `added` is hidden
                                   **public(adding, "add_character"))
    for outcome in (added_event.success, added_event.failure):  # the uploads are gone
        outcome(lambda: None, None, photos, **PRIVATE)
    added_event.success(signed_in(settings, show_added, quiet=True), added,
                        [added_note, report, crops], **PRIVATE).then(
        quiet_refresh, to_delete, listing, **PRIVATE)
    deleting = signed_in(settings, delete_character, fresh=True)
    delete_button.click(deleting, [to_delete, hub_too], deleted,
                        **public(deleting, "delete_character")).success(
        show_deleted, deleted, deleted_note, **PRIVATE).then(
        quiet_refresh, to_delete, listing, **PRIVATE)
    tab.select(quiet_refresh, to_delete, listing, **PRIVATE)
    demo.load(quiet_refresh, to_delete, listing, **PRIVATE)
