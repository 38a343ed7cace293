"""Train tab: a character and a goal, the GPU time it will take, training with a progress bar
(step, loss, time left), the validation image and where the adapter went on the Hub.

Public API: /train_character, /push_adapter (events) and /estimate_training (gr.api).
"""
import dataclasses
import json
from typing import Optional

import gradio as gr

from pipeline.hub import repos as hub
from pipeline.characters import VALIDATION_IMAGE, Character, CharacterStore
from pipeline.progress import counted
from pipeline.settings import Settings
from pipeline.training.trainer import estimate_character, train_character
from pipeline.training.config import PRESETS, TrainConfig, preset_config, preset_for_kind
from ui.auth import Identity, hub_advice, identify, identify_quietly
from ui.common import (GPU, PRIVATE, STATUS_HEIGHT, choices, escape_md, own_choice, picture,
                       progress_bar, public, user_errors)
from ui.characters import character_rows

PUSH_LABEL = "Upload to my Hugging Face repo"
GOALS = [(f"{name.capitalize()}: {preset.summary}", name) for name, preset in PRESETS.items()]
INTRO = """\
Training teaches a small adapter (a LoRA) what one character looks like, from its photos. It
takes a few minutes of GPU time per character; you see the estimate before you start, and you
can close the page and press the button again later to continue where it stopped."""


def training_options(text: str) -> dict:
    """The "more training settings" box: a JSON object of TrainConfig fields, or nothing."""
    if not (text or "").strip():
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"more training settings: not valid JSON ({err.msg} at character "
                         f"{err.pos}); write e.g. {{\"rank\": 16}}") from None
    if not isinstance(options, dict):
        raise ValueError('more training settings: write a JSON object, e.g. {"rank": 16}')
    return options


def training_config(settings: Settings, user: str, name: str, preset: str, steps: float,
                    options: str) -> tuple[Character, TrainConfig]:
    """The character and its TrainConfig: the goal's preset (the kind's by default), scaled by
    its photos, with the steps and settings the user gave."""
    character = CharacterStore(settings, user).get(name or "")
    overrides = training_options(options)
    if steps:
        overrides["steps"] = int(steps)
    config = preset_config(preset or preset_for_kind(character.kind),
                           max(1, len(character.crops)), **overrides)
    return character, config


def estimate(settings: Settings, user: str, name: str, preset: str, steps: float,
             options: str) -> dict:
    """What /estimate_training returns: the config and the GPU time still needed."""
    character, config = training_config(settings, user, name, preset, steps, options)
    needed = estimate_character(settings, user, character.name, config)
    return {"character": character.name, "config": config.to_dict(),
            "estimate": dataclasses.asdict(needed), "text": needed.describe()}


def hub_status(settings: Settings, who: Identity, character: Character,
               trained_now: bool) -> hub.HubResult:
    """Push a freshly trained adapter with the user's token; an adapter already on the Hub
    is reported, not uploaded again."""
    record = hub.hub_record(settings, who.user, character)
    if record is not None and not trained_now:
        return hub.HubResult("pushed", record.repo_id, record.url,
                             f"{character.name}'s adapter is in your private repo "
                             f"{record.repo_id}: {record.url}", revision=record.revision)
    return hub.push_adapter(settings, who.user, character, who.token)


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Train tab and its events (inside the app's gr.Tabs)."""

    @user_errors
    def estimate_training(name: str, preset: str = "", steps: int = 0, options: str = "",
                          profile: Optional[gr.OAuthProfile] = None,
                          token: Optional[gr.OAuthToken] = None) -> dict:
        """The GPU time still needed to train a character, before starting.

        Args:
            name: the character's name
            preset: the goal: person, pet or object ("" chooses from the character's kind)
            steps: training steps in all (0: the goal's default, scaled by the photos)
            options: more training settings as a JSON object, e.g. {"rank": 16}
        """
        return estimate(settings, identify(settings, profile, token).user, name, preset,
                        steps, options)

    @user_errors
    def train_character_api(name: str, preset: str = "", steps: int = 0, options: str = "",
                            profile: Optional[gr.OAuthProfile] = None,
                            token: Optional[gr.OAuthToken] = None,
                            progress=gr.Progress()) -> dict:
        """Train (or go on training) a character's adapter, then upload it to your private repo.

        An interrupted run continues from its last checkpoint. On ZeroGPU it runs in slices
        of GPU time, one after another, until done. The upload uses your own Hugging Face
        token (sign-in, or the token you pass); without one the adapter stays on the server.

        Args:
            name: the character's name
            preset: the goal: person, pet or object (the choices of the form)
            steps: training steps in all (0: the goal's default, scaled by the photos)
            options: more training settings as a JSON object, e.g. {"rank": 16}
        """
        who = identify(settings, profile, token)
        character, config = training_config(settings, who.user, name, preset, steps, options)
        result = train_character(settings, who.user, character.name, config,
                                 on_progress=progress_bar(progress))
        pushed = hub_status(settings, who, character, result.chunks > 0) if result.done else None
        record = {k: v for k, v in dataclasses.asdict(result).items() if k != "adapter_dir"}
        return {**record, "config": config.to_dict(), "hub": pushed.to_json() if pushed else None}

    @user_errors
    def push_adapter_api(name: str, with_validation_image: bool = False,
                         profile: Optional[gr.OAuthProfile] = None,
                         token: Optional[gr.OAuthToken] = None) -> dict:
        """Upload a trained adapter to your private repo <you>/taleweaver-<name> (your token).

        Args:
            name: the character's name
            with_validation_image: also upload the validation image (it shows the character;
                by default no picture leaves the server)
        """
        who = identify(settings, profile, token)
        character = CharacterStore(settings, who.user).get(name or "")
        return hub.push_adapter(settings, who.user, character, who.token,
                                include_validation_image=bool(with_validation_image)).to_json()

    def refresh(current: Optional[str], profile: Optional[gr.OAuthProfile] = None,
                token: Optional[gr.OAuthToken] = None):
        who = identify_quietly(settings, profile, token)
        rows = character_rows(settings, who.user) if who else []
        names = [(r["name"] + ("" if r["trained"] else " (not trained yet)"), r["name"])
                 for r in rows]
        return choices(names, current), gr.update(visible=not rows)

    def suggest_goal(name: Optional[str], profile: Optional[gr.OAuthProfile] = None,
                     token: Optional[gr.OAuthToken] = None):
        who = identify_quietly(settings, profile, token)
        kind = next((r["kind"] for r in character_rows(settings, who.user)
                     if r["name"] == name), None) if who and name else None
        return preset_for_kind(kind) if kind else gr.update()

    def show_estimate(name: Optional[str], preset: str, steps: float, options: str,
                      profile: Optional[gr.OAuthProfile] = None,
                      token: Optional[gr.OAuthToken] = None) -> str:
        who = identify_quietly(settings, profile, token)
        if not name or who is None:
            return ""
        try:
            needed = estimate(settings, who.user, name, preset, steps, options)
        except (ValueError, RuntimeError) as err:
            return f"**Can't estimate yet:** {escape_md(str(err))}"
        return f"**Estimated:** {escape_md(needed['text'])}"

    def show_result(result: dict, profile: Optional[gr.OAuthProfile] = None,
                    token: Optional[gr.OAuthToken] = None):
        who = identify_quietly(settings, profile, token)
        if not result or who is None:
            return gr.update(), gr.update(), gr.update()
        name = escape_md(result["character"])
        loss = "" if result["loss"] is None else f", loss {result['loss']:.4f}"
        if result["done"]:
            lines = [f"**{name}** is trained ({counted(result['step'], 'step')}{loss}). Use "
                     f"{name} in a story in the **Story** tab."]
        else:
            lines = [f"**{name}**: step {result['step']} of {result['total']}{loss}. Press "
                     "the button again to continue."]
        lines += [f"**Note:** {escape_md(w)}" for w in result["warnings"]]
        store = CharacterStore(settings, who.user)
        image = picture(store.adapter_dir(store.get(result["character"])) / VALIDATION_IMAGE)
        return "\n\n".join(lines), gr.update(value=image, visible=image is not None), \
            hub_line(result["hub"])

    def hub_line(pushed: Optional[dict]) -> str:
        if not pushed:
            return ""
        text = escape_md(" ".join(filter(None, [pushed["message"], hub_advice(
            settings, pushed["reason"], f'press "{PUSH_LABEL}"')])))
        if pushed["url"]:  # a link, not escaped text
            text = text.replace(escape_md(pushed["url"]), f"<{pushed['url']}>")
        return f"**Hugging Face Hub:** {text}"

    with gr.Tab("2 · Train", id="train") as tab:
        gr.Markdown(INTRO)
        no_characters = gr.Markdown("Add a character in the **Characters** tab first.",
                                    visible=False)
        with gr.Row(equal_height=False):
            name = own_choice("Character", "Mia")
            goal = gr.Radio(GOALS, value="person", label="What should the adapter learn?")
        with gr.Accordion("Advanced settings", open=False):
            steps = gr.Number(0, precision=0, minimum=0, label="Training steps",
                              info="0: the goal's default, scaled by the number of photos")
            options = gr.Textbox(label="More training settings (JSON)", lines=2,
                                 placeholder='{"rank": 16, "learning_rate": 5e-5, '
                                             '"prior_preservation": false}')
        estimate_note = gr.Markdown()
        train_button = gr.Button("Start or continue training", variant="primary")
        trained = gr.JSON(visible=False)
        status = gr.Markdown(min_height=STATUS_HEIGHT)
        with gr.Row(equal_height=False):
            validation = gr.Image(label="Validation image (drawn by the adapter)",
                                  visible=False, height=320, interactive=False,
                                  buttons=["download", "fullscreen"])
            with gr.Column():
                hub_note = gr.Markdown(min_height=STATUS_HEIGHT)
                push_button = gr.Button(PUSH_LABEL, size="sm")
                with_image = gr.Checkbox(label="Also upload the validation image (it shows "
                                               "the character)")
                pushed = gr.JSON(visible=False)
        gr.api(estimate_training, **public(estimate_training, "estimate_training"))

    estimate_inputs = [name, goal, steps, options]
    name.change(suggest_goal, name, goal, **PRIVATE)
    for control in estimate_inputs:
        control.change(show_estimate, estimate_inputs, estimate_note, **PRIVATE)
    train_button.click(train_character_api, estimate_inputs, trained, show_progress_on=status,
                       **public(train_character_api, "train_character"), **GPU).success(
        show_result, trained, [status, validation, hub_note], **PRIVATE).then(
        refresh, name, [name, no_characters], **PRIVATE).then(
        show_estimate, estimate_inputs, estimate_note, **PRIVATE)
    push_button.click(push_adapter_api, [name, with_image], pushed, show_progress_on=hub_note,
                      **public(push_adapter_api, "push_adapter")).success(
        hub_line, pushed, hub_note, **PRIVATE)
    tab.select(refresh, name, [name, no_characters], **PRIVATE)
    demo.load(refresh, name, [name, no_characters], **PRIVATE)
