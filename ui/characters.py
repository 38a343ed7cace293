"""Characters tab: a person or pet from a few photos, the verdict on each photo with the crops
kept for training, the user's characters; more photos, a new kind or look; delete (after a
confirmation that names the books using it).

Public API: /add_character, /add_photos, /change_character, /delete_character (events) and
/list_characters (gr.api).
"""
from typing import Optional

import gradio as gr

from pipeline.actions import characters
from pipeline.progress import counted
from pipeline.settings import Settings
from ui.auth import Caller, hub_advice, signed_in
from ui.common import (LIGHT, PRIVATE, STATUS_HEIGHT, choices, confirmation, escape_md,
                       forget_uploads,
                       own_choice, picture, progress_bar, public)

KINDS = ["girl", "boy", "baby", "woman", "man", "grandma", "grandpa", "dog", "cat", "toy"]
PHOTO_TYPES = ["image", ".heic", ".heif"]
TABLE_HEADERS = ["Name", "Kind", "Look", "Photos", "Trained", "Hub repo"]
REPORT_HEADERS = ["#", "Photo", "Verdict", "Notes"]
HUB_TOO_LABEL = "Also delete its private Hugging Face repo"
ROW_PX = 64  # a verdict row's height when its notes wrap to two lines
INTRO = """\
Add each person or pet of your story with **{photos} photos** (about 8 is best): the same
person, sharp, in good light, from different angles and days, the face clearly visible. Photos
straight from a phone are fine (JPEG, HEIC, PNG, WebP). Only square crops are kept, never your
uploads unless you ask."""


def add_character(caller: Caller, name: str, kind: str, description: str,
                  photos: Optional[list[str]], keep_originals: bool = False,
                  progress=gr.Progress()) -> dict:
    """Make a character from {photos} photos of one person or pet; each photo gets a verdict.

    Nothing is saved when too few photos can be used; the error names each photo and the
    reason. The uploaded files are deleted from the server once the character is saved (after
    a refusal they stay a while, at most an hour, so that the app can send them again).

    Args:
        name: the character's name, e.g. Mia
        kind: who it is: girl, boy, woman, man, baby, dog, cat, or a few words
        description: the look every page reuses, e.g. "curly red hair" (may be empty)
        photos: photo files (JPEG, PNG, HEIC, WebP, GIF, BMP, TIFF)
        keep_originals: also keep the uploaded files (by default only the crops are kept)
    """
    yield from _saved_or_refused(photos, lambda: characters.add_character(
        caller.settings, caller.user, name or "", kind or "", description or "", photos or [],
        keep_originals=bool(keep_originals), on_progress=progress_bar(progress)))


def add_photos(caller: Caller, name: str, photos: Optional[list[str]],
               keep_originals: bool = False, progress=gr.Progress()) -> dict:
    """Add photos to one of your characters (up to {most} photos in all); each gets a verdict.

    The result's "out_of_date" says why the character's trained adapter no longer fits it
    (train it again); nothing changes when none of the photos can be used.

    Args:
        name: the character's name
        photos: photo files (JPEG, PNG, HEIC, WebP, GIF, BMP, TIFF)
        keep_originals: also keep the uploaded files (by default only the crops are kept)
    """
    yield from _saved_or_refused(photos, lambda: characters.add_photos(
        caller.settings, caller.user, name or "", photos or [],
        keep_originals=bool(keep_originals), on_progress=progress_bar(progress)))


def _saved_or_refused(photos: Optional[list[str]], add):
    """Run `add`; when too few photos can be used, first show the verdicts (the page keeps the
    photos in their box for another try), then fail with the message."""
    try:
        added = add()
    except characters.NotEnoughPhotos as err:
        yield {"character": None, "error": str(err).splitlines()[0],
               "photos": [report.to_json() for report in err.reports]}
        raise
    forget_uploads(photos or [])
    yield added.to_json()


def change_character(caller: Caller, name: str, kind: str = "", description: str = "") -> dict:
    """Change who one of your characters is, or its look. The result's "out_of_date" says
    when its trained adapter no longer fits it (a new kind: train it again); a new look
    reaches every page as it is drawn.

    Args:
        name: the character's name
        kind: who it is now, e.g. "little girl" ("" keeps it)
        description: its look, e.g. "short brown hair" ("" for none)
    """
    return characters.change_character(caller.settings, caller.user, name or "",
                                       kind=(kind or "").strip() or None,
                                       description=description or "").to_json()


def list_characters(caller: Caller) -> list[dict]:
    """Your characters: name, kind, look, photos, trigger token, trained or not, Hub repo,
    and why a trained adapter is out of date ("" when it fits)."""
    return [row.to_json() for row in characters.list_characters(caller.settings, caller.user)]


def delete_character(caller: Caller, name: str, delete_hub_repo: bool = False) -> dict:
    """Delete a character with its photos, crops, checkpoints and adapter on this machine.
    The result lists the books whose pages still name it.

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


def refresh(caller: Optional[Caller], current: Optional[str], changing: Optional[str]):
    """The table of the user's characters and the dropdowns that choose one."""
    rows = characters.list_characters(caller.settings, caller.user) if caller else []
    table = [[r.name, r.kind, r.description, r.photos, _trained(r), r.hub_repo or "-"]
             for r in rows]
    names = [(r.name, r.name) for r in rows]
    return gr.update(value=table, visible=bool(rows)), gr.update(visible=not rows), \
        choices(names, current), choices(names, changing)


def _trained(row: characters.CharacterRow) -> str:
    if not row.trained:
        return "not yet"
    return "out of date: train again" if row.out_of_date else "yes"


def show_added(caller: Optional[Caller], result: dict):
    """The verdict on each photo and the crops kept, after a character is saved or grows."""
    if not result or caller is None or not result.get("character"):
        return gr.update(), gr.update(), gr.update()
    name = result["character"]["name"]
    crops = [(picture(path), source)
             for path, source in characters.crop_files(caller.settings, caller.user, name)]
    used = sum(r["accepted"] for r in result["photos"])
    what = (f"Saved **{escape_md(name)}** ({escape_md(result['character']['kind'])}) with "
            f"{used} of {len(result['photos'])} photos.")
    if len(crops) > used:  # photos added to a character that had some
        what = (f"Added {used} of {len(result['photos'])} photos to **{escape_md(name)}**, "
                f"who now has {counted(len(crops), 'photo')}.")
    lines = [what, _next_step(name, result.get("out_of_date", ""))]
    return " ".join(lines), _verdicts(result["photos"]), gr.update(value=crops, visible=True)


def _next_step(name: str, out_of_date: str) -> str:
    if out_of_date:
        return (f"**{escape_md(name)}'s adapter is out of date:** {escape_md(out_of_date)}. "
                f"Train {escape_md(name)} again in the **Train** tab.")
    return f"Next: train {escape_md(name)} in the **Train** tab."


def show_refused(result: dict):
    """After a refusal: every photo's verdict, and what to do; the photos stay in their box."""
    if not result or result.get("character") is not None:
        return gr.update(), gr.update(), gr.update()
    note = (f"**Nothing was saved:** {escape_md(result['error'])}. Your photos are still in the "
            "box: remove the ones marked below, add others, and press the button again.")
    return note, _verdicts(result["photos"]), gr.update(visible=False)


def _verdicts(photos: list[dict]) -> dict:
    rows = [[r["index"], r["source"], "accepted" if r["accepted"] else r["message"],
             "; ".join(r["warnings"])] for r in photos]
    return gr.update(value=rows, visible=True)


def fill_change(caller: Optional[Caller], name: Optional[str]):
    """The kind and look of the character chosen for a change."""
    if caller is None or not name:
        return gr.update(), gr.update()
    try:
        character = characters.get_character(caller.settings, caller.user, name)
    except ValueError:
        return gr.update(), gr.update()
    return character.kind, character.description


def show_changed(result: dict) -> str:
    if not result:
        return ""
    character = result["character"]
    name = escape_md(character["name"])
    look = f", looking: {escape_md(character['description'])}" if character["description"] \
        else ""
    saved = f"Saved: **{name}** is a {escape_md(character['kind'])}{look}."
    if result["out_of_date"]:
        return f"{saved} {_next_step(character['name'], result['out_of_date'])}"
    return f"{saved} The pages drawn from now on use it."


def ask_delete(caller: Optional[Caller], name: Optional[str], with_repo: bool):
    """The question before deleting: what goes, and which books name the character."""
    if caller is None or not name:
        return gr.update(visible=False), ""
    try:
        character = characters.get_character(caller.settings, caller.user, name)
    except ValueError as err:
        return gr.update(visible=False), escape_md(str(err))
    who = escape_md(character.name)
    question = [f"**Delete {who}?** Its photos, crops and adapter on this server go"
                + (", and its private Hugging Face repo" if with_repo else "") + "."]
    uses = characters.books_using(caller.settings, caller.user, character.name)
    if uses:
        listed = "; ".join(f"“{escape_md(use.title)}” ({_pages(use.pages)})" for use in uses)
        question.append(f"{who} is in {counted(len(uses), 'book')}: {listed}. Those pages "
                        "keep their pictures, but can't be drawn again without "
                        f"{who}.")
    else:
        question.append(f"No book uses {who}.")
    return gr.update(visible=True), " ".join(question)


def _pages(numbers: tuple[int, ...]) -> str:
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(map(str, numbers))


def show_deleted(result: dict) -> str:
    if not result:
        return ""
    hub_line = f" {escape_md(result['hub']['message'])}" if result.get("hub") else ""
    return (f"Deleted **{escape_md(result['deleted'])}** with its photos, crops and "
            f"adapter.{hub_line}")


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Characters tab and its events (inside the app's gr.Tabs)."""
    photo_limits = characters.photo_limits(settings)
    with gr.Tab("1 · Characters", id="characters") as tab:
        gr.Markdown(INTRO.format(photos=photo_limits))
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
                              max_height=ROW_PX * (settings.max_photos + 1),  # every row shows
                              elem_classes="tw-table")
        crops = gr.Gallery(label="Crops kept for training", columns=8, height=210,
                           visible=False, object_fit="contain", fit_columns=False,
                           allow_preview=True, buttons=["fullscreen"])
        gr.Markdown("### Your characters")
        none_yet = gr.Markdown("No characters yet: add one above.")
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, visible=False, wrap=True,
                             elem_classes="tw-table")
        with gr.Accordion("Change a character: more photos, who it is, its look", open=False):
            to_change = own_choice("Character", "Mia")
            with gr.Row(equal_height=True):
                new_kind = gr.Dropdown(KINDS, label="Who is it?", allow_custom_value=True)
                new_look = gr.Textbox(label="Look", max_length=300)
                change_button = gr.Button("Save these", size="sm")
            changed = gr.JSON(visible=False)
            more_photos = gr.File(label=f"More photos ({settings.max_photos} in all at most)",
                                  file_count="multiple", file_types=PHOTO_TYPES, height=160)
            more_button = gr.Button("Add these photos", size="sm")
            change_note = gr.Markdown(min_height=STATUS_HEIGHT)
        with gr.Accordion("Delete a character", open=False):
            with gr.Row(equal_height=True):
                to_delete = own_choice("Character", "Mia")
                hub_too = gr.Checkbox(label=HUB_TOO_LABEL)
                delete_button = gr.Button("Delete…", variant="stop")
            asking, question, confirm_button, cancel_button = confirmation("Yes, delete it")
            deleted = gr.JSON(visible=False)
            deleted_note = gr.Markdown()
        listed = signed_in(settings, list_characters)
        gr.api(listed, **public(listed, "list_characters"), **LIGHT)

    listing = [table, none_yet, to_delete, to_change]
    quiet_refresh = signed_in(settings, refresh, quiet=True)
    shown = [added_note, report, crops]
    adding = signed_in(settings, add_character)
    added_event = add_button.click(lambda: None, None, added, **PRIVATE).then(
        adding, [name, kind, description, photos, keep], added,
        show_progress_on=added_note,  # `added` is hidden
        **public(adding, "add_character", photos=photo_limits))
    added_event.success(lambda: None, None, photos, **PRIVATE)  # the uploads are gone
    added_event.failure(show_refused, added, shown, **PRIVATE)
    added_event.success(signed_in(settings, show_added, quiet=True), added, shown,
                        **PRIVATE).then(quiet_refresh, [to_delete, to_change], listing, **PRIVATE)

    growing = signed_in(settings, add_photos)
    grown = more_button.click(lambda: None, None, added, **PRIVATE).then(
        growing, [to_change, more_photos, keep], added, show_progress_on=change_note,
        **public(growing, "add_photos", most=str(settings.max_photos)))
    grown.success(lambda: (None, ""), None, [more_photos, change_note], **PRIVATE)
    grown.failure(show_refused, added, [change_note, report, crops], **PRIVATE)
    grown.success(signed_in(settings, show_added, quiet=True), added, shown, **PRIVATE).then(
        quiet_refresh, [to_delete, to_change], listing, **PRIVATE)

    changing = signed_in(settings, change_character)
    to_change.change(signed_in(settings, fill_change, quiet=True), to_change,
                     [new_kind, new_look], **PRIVATE)
    change_button.click(changing, [to_change, new_kind, new_look], changed,
                        show_progress_on=change_note,
                        **public(changing, "change_character")).success(
        show_changed, changed, change_note, **PRIVATE).then(
        quiet_refresh, [to_delete, to_change], listing, **PRIVATE)

    deleting = signed_in(settings, delete_character, fresh=True)
    delete_button.click(signed_in(settings, ask_delete, quiet=True), [to_delete, hub_too],
                        [asking, question], **PRIVATE)
    cancel_button.click(lambda: gr.update(visible=False), None, asking, **PRIVATE)
    confirm_button.click(lambda: gr.update(visible=False), None, asking, **PRIVATE).then(
        deleting, [to_delete, hub_too], deleted,
        **public(deleting, "delete_character")).success(
        show_deleted, deleted, deleted_note, **PRIVATE).then(
        quiet_refresh, [to_delete, to_change], listing, **PRIVATE)
    for shown_again in (tab.select, demo.load):
        shown_again(quiet_refresh, [to_delete, to_change], listing, **PRIVATE)
