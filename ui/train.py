"""Train tab: a character and a goal, the time it will take, training with a progress bar
(step, loss, time left), the validation image and where the adapter went on the Hub; then
"try it": one quick picture of the character in a scene, at an adapter strength. Reopened
while a character trains (or after it finished unwatched), it shows that character.

Public API: /train_character, /push_adapter, /try_character (events) and /estimate_training
(gr.api).
"""
from typing import Optional

import gradio as gr

from pipeline.actions import books, characters, training, work
from pipeline.progress import counted
from pipeline.settings import Settings
from ui.auth import Caller, hub_advice, signed_in
from ui.common import (GPU, PRIVATE, STATUS_HEIGHT, choices, escape_md, own_choice, picture,
                       progress_bar, public)

PUSH_LABEL = "Upload to my Hugging Face repo"
GOALS = [(f"{name.capitalize()}: {preset.summary}", name)
         for name, preset in training.PRESETS.items()]
INTRO = """\
Training teaches a small adapter (a LoRA) what one character looks like, from its photos. It
takes a few minutes of GPU time per character; you see the estimate before you start, and you
can close the page and press the button again later to continue where it stopped."""


def form_options(steps: float, options: str) -> dict:
    """The form's training settings: the JSON box, with the steps box when it isn't 0."""
    values = training.parse_options(options)
    if steps:
        values["steps"] = int(steps)
    return values


def estimate_training(caller: Caller, name: str, preset: str = "", steps: int = 0,
                      options: str = "") -> dict:
    """The GPU time still needed to train a character, before starting.

    Args:
        name: the character's name
        preset: the goal: person, pet or object ("" chooses from the character's kind)
        steps: training steps in all (0: the goal's default, scaled by the photos)
        options: more training settings as a JSON object, e.g. {"rank": 16}
    """
    return training.plan_training(caller.settings, caller.user, name or "", preset or "",
                                  form_options(steps, options)).to_json()


def train_character(caller: Caller, name: str, preset: str = "", steps: int = 0,
                    options: str = "", progress=gr.Progress()) -> dict:
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
    return training.train(caller.settings, caller.user, name or "", preset or "",
                          form_options(steps, options), token=caller.token,
                          on_progress=progress_bar(progress)).to_json()


def push_adapter(caller: Caller, name: str, with_validation_image: bool = False) -> dict:
    """Upload a trained adapter to your private repo <you>/taleweaver-<name> (your token).

    Args:
        name: the character's name
        with_validation_image: also upload the validation image (it shows the character;
            by default no picture leaves the server)
    """
    return training.push(caller.settings, caller.user, name or "", caller.token,
                         with_validation_image=bool(with_validation_image)).to_json()


def try_character(caller: Caller, name: str, scene: str = "", adapter_weight: float = 1.0,
                  seed: int = -1, style: str = books.DEFAULT_STYLE):
    """Draw one quick picture of a trained character in a scene, with its adapter alone.

    Returns the picture and how it was drawn (scene, prompt, seed, size, steps; "likeness"
    is null until likeness scores come to characters).

    Args:
        name: the character's name
        scene: what it does, e.g. "on a swing in the park" (the name is added in front)
        adapter_weight: the adapter's strength, above 0 to 2 (1: as trained; lower follows
            the scene more, higher the photos more)
        seed: the picture's seed (-1: a new one; the result says which)
        style: art style: watercolor, pastel, cartoon, pencil, 3d or papercut
    """
    tried = training.try_character(caller.settings, caller.user, name or "", scene or "",
                                   adapter_weight=float(adapter_weight or 1.0),
                                   style=style or books.DEFAULT_STYLE,
                                   seed=None if seed is None or seed < 0 else int(seed),
                                   token=caller.token)
    return tried.image, tried.to_json()


def show_tried(result: dict) -> str:
    if not result:
        return ""
    return (f"{escape_md(result['scene'])}, at strength {result['adapter_weight']:g} "
            f"({result['width']}x{result['height']}, {counted(result['steps'], 'step')}, seed "
            f"{result['seed']}: the same seed draws it again)")


def resume(caller: Optional[Caller]):
    """On opening the page: the character of training that runs, or that ended while nobody
    watched, is selected, with where it stands (the panel at the top follows it)."""
    job = work.latest_work(caller.settings, caller.user, "training") if caller else None
    if job is None or not (job.running or not job.seen):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if job.running:
        status = (f"**{escape_md(job.subject)} is training** (started earlier): its progress "
                  "shows at the top of the page, where you can also cancel it.")
        return job.subject, status, gr.skip(), gr.skip()
    if job.state == "done" and job.result:
        shown = show_result(caller, job.result)
        return (job.subject, "While you were away: " + shown[0]) + tuple(shown[1:])
    return (job.subject, f"**{escape_md(job.title)}** {escape_md(job.message or job.state)}. "
            "Press the button to go on from its last checkpoint.", gr.skip(), gr.skip())


def refresh(caller: Optional[Caller], current: Optional[str]):
    """The character dropdown (untrained ones marked), or a hint when there is none."""
    rows = characters.list_characters(caller.settings, caller.user) if caller else []
    names = [(r.name + (" (not trained yet)" if not r.trained else
                        " (out of date: train again)" if r.out_of_date else ""), r.name)
             for r in rows]
    return choices(names, current), gr.update(visible=not rows)


def suggest_goal(caller: Optional[Caller], name: Optional[str]):
    """The goal the character's kind suggests (a dog: pet)."""
    if caller is None or not name:
        return gr.update()
    try:
        return training.preset_for_kind(
            characters.get_character(caller.settings, caller.user, name).kind)
    except ValueError:
        return gr.update()


def show_estimate(caller: Optional[Caller], name: Optional[str], preset: str, steps: float,
                  options: str) -> str:
    if not name or caller is None:
        return ""
    try:
        needed = estimate_training(caller, name, preset, steps, options)
    except (ValueError, RuntimeError) as err:
        return f"**Can't estimate yet:** {escape_md(str(err))}"
    return f"**Estimated:** {escape_md(needed['text'])}"


def show_result(caller: Optional[Caller], result: dict):
    if not result or caller is None:
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
    image = picture(training.validation_image(caller.settings, caller.user,
                                              result["character"]))
    return "\n\n".join(lines), gr.update(value=image, visible=image is not None), \
        hub_line(caller, result["hub"])


def hub_line(caller: Optional[Caller], pushed: Optional[dict]) -> str:
    if not pushed or caller is None:
        return ""
    text = escape_md(" ".join(filter(None, [pushed["message"], hub_advice(
        caller.settings, pushed["reason"], f'press "{PUSH_LABEL}"')])))
    if pushed["url"]:  # a link, not escaped text
        text = text.replace(escape_md(pushed["url"]), f"<{pushed['url']}>")
    return f"**Hugging Face Hub:** {text}"


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Train tab and its events (inside the app's gr.Tabs)."""
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
        with gr.Accordion("Try it: the character in a scene of your own", open=False):
            with gr.Row(equal_height=True):
                scene = gr.Textbox(label="Scene", placeholder="on a swing in the park", scale=3)
                strength = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Adapter strength",
                                     info="lower follows the scene more, higher the photos more",
                                     scale=2)
                try_seed = gr.Number(-1, precision=0, label="Seed (-1: a new one)", scale=1)
                try_style = gr.Dropdown([(s.label, n) for n, s in books.styles().items()],
                                        value=books.DEFAULT_STYLE, label="Style", scale=1,
                                        allow_custom_value=True)
            try_button = gr.Button("Draw it", size="sm")
            tried_image = gr.Image(label="Your character", interactive=False, height=320,
                                   buttons=["download", "fullscreen"])
            tried = gr.JSON(visible=False)
            tried_note = gr.Markdown(min_height=STATUS_HEIGHT)
        estimating = signed_in(settings, estimate_training)
        gr.api(estimating, **public(estimating, "estimate_training"))

    estimate_inputs = [name, goal, steps, options]
    quiet_refresh = signed_in(settings, refresh, quiet=True)
    quiet_estimate = signed_in(settings, show_estimate, quiet=True)
    name.change(signed_in(settings, suggest_goal, quiet=True), name, goal, **PRIVATE)
    for control in estimate_inputs:
        control.change(quiet_estimate, estimate_inputs, estimate_note, **PRIVATE)
    training_event = signed_in(settings, train_character)
    train_button.click(training_event, estimate_inputs, trained, show_progress_on=status,
                       **public(training_event, "train_character"), **GPU).success(
        signed_in(settings, show_result, quiet=True), trained, [status, validation, hub_note],
        **PRIVATE).then(
        quiet_refresh, name, [name, no_characters], **PRIVATE).then(
        quiet_estimate, estimate_inputs, estimate_note, **PRIVATE)
    pushing = signed_in(settings, push_adapter)
    push_button.click(pushing, [name, with_image], pushed, show_progress_on=hub_note,
                      **public(pushing, "push_adapter")).success(
        signed_in(settings, hub_line, quiet=True), pushed, hub_note, **PRIVATE)
    trying = signed_in(settings, try_character)
    try_button.click(trying, [name, scene, strength, try_seed, try_style], [tried_image, tried],
                     show_progress_on=tried_note, **public(trying, "try_character"),
                     **GPU).success(show_tried, tried, tried_note, **PRIVATE)
    tab.select(quiet_refresh, name, [name, no_characters], **PRIVATE)
    demo.load(quiet_refresh, name, [name, no_characters], **PRIVATE).then(
        signed_in(settings, resume, quiet=True), None, [name, status, validation, hub_note],
        **PRIVATE)
