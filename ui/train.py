"""Train tab: a character and a goal, where to train (here, or Hugging Face Jobs on hardware of
the parent's choice), the GPU time and cost it will take, training with a progress bar (step,
loss, time left; a job is followed with the same bar), cancelling a job, the validation image
and where the adapter went on the Hub; then "try it": one quick picture of the character in a
scene, at an adapter strength, with its likeness. Reopened while a character trains here (or
after it finished unwatched), it shows that character.

Public API: /train_character, /train_on_jobs, /cancel_job, /push_adapter, /try_character
(events) and /estimate_training, /job_status, /jobs_hardware (gr.api).
"""
import contextlib
from typing import Optional

import gradio as gr

from pipeline.actions import books, characters, training, work
from pipeline.progress import counted
from pipeline.settings import Settings
from ui.auth import Caller, hub_advice, signed_in
from ui.common import (GPU, LIGHT, PRIVATE, STATUS_HEIGHT, choices, escape_md, own_choice,
                       picture, progress_bar, public)

PUSH_LABEL = "Upload to my Hugging Face repo"
JOBS_LABEL = "Train on Hugging Face Jobs"
HERE_INSTEAD = 'Choose "Here" to train on this machine instead.'
PLACES = [("Here (this app's GPU: ZeroGPU on a Space)", "here"),
          ("Hugging Face Jobs (a GPU in your own account, billed to it)", "hf-jobs")]
GOALS = [(f"{name.capitalize()}: {preset.summary}", name)
         for name, preset in training.PRESETS.items()]
INTRO = """\
Training teaches a small adapter (a LoRA) what one character looks like, from its photos. It
takes a few minutes of GPU time per character; you see the estimate before you start, and you
can close the page and press the button again later to continue where it stopped.

On a free ZeroGPU Space a person takes a few days of free GPU minutes; **Hugging Face Jobs**
trains one within the hour (about 40 minutes on an L4, 15 on an A100) on a GPU in your own
Hugging Face account, billed to it: well under a dollar (the cost is shown before you start)."""


def form_options(steps: float, options: str) -> dict:
    """The form's training settings: the JSON box, with the steps box when it isn't 0."""
    values = training.parse_options(options)
    if steps:
        values["steps"] = int(steps)
    return values


def estimate_training(caller: Caller, name: str, preset: str = "", steps: int = 0,
                      options: str = "", where: str = "here", flavor: str = "") -> dict:
    """The GPU time still needed to train a character, before starting; on Hugging Face Jobs
    also the minutes and the cost on that hardware, and where the photos go.

    Args:
        name: the character's name
        preset: the goal: person, pet or object ("" chooses from the character's kind)
        steps: training steps in all (0: the goal's default, scaled by the photos)
        options: more training settings as a JSON object, e.g. {"rank": 16}
        where: here (this app's GPU) or hf-jobs (Hugging Face Jobs, in your account)
        flavor: the Jobs hardware, e.g. l4x1 (see /jobs_hardware; "" for the app's default)
    """
    with here_instead():
        return training.plan_training(caller.settings, caller.user, name or "", preset or "",
                                      form_options(steps, options), where=where or "here",
                                      flavor=flavor or "", token=caller.token).to_json()


def jobs_hardware(caller: Caller) -> list:
    """The GPU hardware of Hugging Face Jobs with its prices, cheapest first (your token)."""
    with here_instead():
        return [flavor.to_json() for flavor in training.jobs_hardware(caller.token)]


def train_on_jobs(caller: Caller, name: str, preset: str = "", steps: int = 0,
                  options: str = "", flavor: str = "", progress=gr.Progress()) -> dict:
    """Train a character on Hugging Face Jobs, in your own account and billed to it, and
    follow the job to its end; the adapter then comes to this app as after training here.

    The character's crops go to a private storage bucket in your account for the job's time
    only. A job of this character that is still running is followed, not started again.

    Args:
        name: the character's name
        preset: the goal: person, pet or object (the choices of the form)
        steps: training steps in all (0: the goal's default, scaled by the photos)
        options: more training settings as a JSON object, e.g. {"rank": 16}
        flavor: the Jobs hardware, e.g. l4x1 (see /jobs_hardware; "" for the app's default)
    """
    with here_instead():
        return training.train_on_jobs(caller.settings, caller.user, name or "", preset or "",
                                      form_options(steps, options), token=caller.token,
                                      flavor=flavor or "",
                                      on_progress=progress_bar(progress)).to_json()


def job_status(caller: Caller, name: str) -> dict:
    """The state of a character's training job on Hugging Face Jobs (an ended job brings its
    adapter here and its photos leave the bucket); state "none" when it never had one.

    Args:
        name: the character's name
    """
    record = training.job_status(caller.settings, caller.user, name or "", caller.token)
    if record is None:
        return {"character": name, "state": "none", "active": False, "done": False,
                "message": f"{name} has not trained on Hugging Face Jobs."}
    return record.to_json()


def cancel_job(caller: Caller, name: str) -> dict:
    """Cancel a character's running training job; it stays as it was, its photos leave the
    bucket, and the progress is kept there for the next job.

    Args:
        name: the character's name
    """
    with here_instead():
        return training.cancel_job(caller.settings, caller.user, name or "",
                                   caller.token).to_json()


@contextlib.contextmanager
def here_instead():
    """Jobs can't be used now (no sign-in, no Jobs permission, no billing): say why, and that
    training here is still there."""
    try:
        yield
    except training.JobsUnavailable as err:
        raise ValueError(f"{str(err)[0].upper()}{str(err)[1:]}. {HERE_INSTEAD}") from None


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
                          on_progress=progress_bar(progress, outlives_the_tab=True)).to_json()


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
                  seed: int = -1, style: str = books.DEFAULT_STYLE, progress=gr.Progress()):
    """Draw one quick picture of a trained character in a scene, with its adapter alone.

    Returns the picture and how it was drawn (scene, prompt, seed, size, steps), with its
    likeness to the character's photos (0-100; null for a pet or when no face was found).

    Args:
        name: the character's name
        scene: what it does, e.g. "on a swing in the park" (the name is added in front)
        adapter_weight: the adapter's strength, above 0 to 2 (1: as trained; lower follows
            the scene more, higher the photos more)
        seed: the picture's seed (-1: a new one; the result says which)
        style: art style: watercolor, pastel, cartoon, pencil, 3d or papercut
    """
    new_seed = seed is None or (isinstance(seed, (int, float)) and seed < 0)
    tried = training.try_character(caller.settings, caller.user, name or "", scene or "",
                                   adapter_weight=1.0 if adapter_weight is None else adapter_weight,
                                   style=style or books.DEFAULT_STYLE,
                                   seed=None if new_seed else seed, token=caller.token,
                                   on_progress=progress_bar(progress))
    return tried.image, tried.to_json()


def show_tried(result: dict) -> str:
    if not result:
        return ""
    return (f"{escape_md(result['scene'])}, at strength {result['adapter_weight']:g} "
            f"({result['width']}x{result['height']}, {counted(result['steps'], 'step')}, seed "
            f"{result['seed']}: the same seed draws it again). "
            f"{escape_md(result['likeness_note'])}")


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
                  options: str, where: str = "here", flavor: str = "") -> str:
    if not name or caller is None:
        return ""
    try:
        needed = estimate_training(caller, name, preset, steps, options, where, flavor)
    except (ValueError, RuntimeError) as err:
        return f"**Can't estimate yet:** {escape_md(str(err))}"
    text = f"**Estimated:** {escape_md(needed['text'])}"
    return text + (f"\n\n**Your photos:** {escape_md(needed['photos'])}" if needed["photos"]
                   else "")


def show_place(caller: Optional[Caller], where: str, flavor: Optional[str]):
    """Here or Jobs: the hardware list with prices and the Jobs button, or the training button;
    Jobs without a sign-in (or without Jobs) says why and goes back to here."""
    jobs, note = where == "hf-jobs", ""
    pairs: list[tuple[str, str]] = []
    if jobs and caller is not None:
        try:
            pairs = [(f["text"], f["name"]) for f in jobs_hardware(caller)]
        except ValueError as err:
            jobs, note = False, f"**Hugging Face Jobs:** {escape_md(str(err))}"
    default = caller.settings.job_flavor if caller else None
    return (gr.update(value="hf-jobs" if jobs else "here"),
            {**choices(pairs, flavor, default=default), "visible": jobs},
            gr.update(visible=not jobs), gr.update(visible=jobs), note)


def show_job(caller: Optional[Caller], name: Optional[str]):
    """The character's job on Hugging Face Jobs, if it has one, and the cancel button while it
    runs (an ended job is settled by looking at it)."""
    if caller is None or not name:
        return "", gr.update(visible=False)
    try:
        record = job_status(caller, name)
    except (ValueError, RuntimeError):
        return "", gr.update(visible=False)
    if record["state"] == "none":
        return "", gr.update(visible=False)
    cost = "" if record["cost_usd"] is None else f" (about ${record['cost_usd']:.2f} so far)"
    text = f"**Hugging Face Jobs:** {escape_md(record['message'])}"
    if record["url"]:
        text += f" The job: <{record['url']}>{escape_md(cost)}"
    if record["active"]:
        text += f' Press "{JOBS_LABEL}" to follow it here.'
    return text, gr.update(visible=record["active"])


def show_job_result(caller: Optional[Caller], result: dict):
    """What a followed job did: the status line, the validation image, the Hub line."""
    if not result or caller is None:
        return gr.update(), gr.update(), gr.update()
    lines = [escape_md(result["message"])]
    if result["done"]:
        name = escape_md(result["character"])
        lines.append(f"Use {name} in a story in the **Story** tab.")
    image = picture(training.validation_image(caller.settings, caller.user,
                                              result["character"])) if result["done"] else None
    return "\n\n".join(lines), gr.update(value=image, visible=image is not None), \
        hub_line(caller, result["hub"])


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
    if result.get("validation"):
        lines.append(escape_md(result["validation"]["text"]))
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
                                             '"prior_preservation": false, "validation": "off"}')
        with gr.Row(equal_height=False):
            where = gr.Radio(PLACES, value="here", label="Where to train")
            flavor = own_choice("Hardware (Hugging Face Jobs, price per hour)", "l4x1",
                                visible=False)
        estimate_note = gr.Markdown()
        with gr.Row():
            train_button = gr.Button("Start or continue training", variant="primary")
            jobs_button = gr.Button(JOBS_LABEL, variant="primary", visible=False)
            cancel_button = gr.Button("Cancel the job", variant="stop", visible=False)
        job_note = gr.Markdown()
        trained = gr.JSON(visible=False)
        trained_on_jobs = gr.JSON(visible=False)
        cancelled = gr.JSON(visible=False)
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
        for handler, api_name in ((estimate_training, "estimate_training"),
                                  (job_status, "job_status"), (jobs_hardware, "jobs_hardware")):
            wrapped = signed_in(settings, handler)
            gr.api(wrapped, **public(wrapped, api_name), **LIGHT)

    estimate_inputs = [name, goal, steps, options]
    quiet_refresh = signed_in(settings, refresh, quiet=True)
    quiet_estimate = signed_in(settings, show_estimate, quiet=True)
    quiet_job = signed_in(settings, show_job, quiet=True)
    name.change(signed_in(settings, suggest_goal, quiet=True), name, goal, **PRIVATE)
    name.change(quiet_job, name, [job_note, cancel_button], **PRIVATE)
    for control in [*estimate_inputs, where, flavor]:
        control.change(quiet_estimate, [*estimate_inputs, where, flavor], estimate_note,
                       **PRIVATE)
    where.input(signed_in(settings, show_place, quiet=True), [where, flavor],
                [where, flavor, train_button, jobs_button, job_note], **PRIVATE)
    training_event = signed_in(settings, train_character)
    train_button.click(training_event, estimate_inputs, trained, show_progress_on=status,
                       **public(training_event, "train_character"), **GPU).success(
        signed_in(settings, show_result, quiet=True), trained, [status, validation, hub_note],
        **PRIVATE).then(
        quiet_refresh, name, [name, no_characters], **PRIVATE).then(
        quiet_estimate, estimate_inputs, estimate_note, **PRIVATE)
    on_jobs = signed_in(settings, train_on_jobs)
    jobs_button.click(on_jobs, [*estimate_inputs, flavor], trained_on_jobs,
                      show_progress_on=status, **public(on_jobs, "train_on_jobs")).success(
        signed_in(settings, show_job_result, quiet=True), trained_on_jobs,
        [status, validation, hub_note], **PRIVATE).then(
        quiet_refresh, name, [name, no_characters], **PRIVATE).then(
        quiet_job, name, [job_note, cancel_button], **PRIVATE)
    cancelling = signed_in(settings, cancel_job, fresh=True)
    cancel_button.click(cancelling, name, cancelled, show_progress_on=job_note,
                        **public(cancelling, "cancel_job")).then(
        quiet_job, name, [job_note, cancel_button], **PRIVATE)
    pushing = signed_in(settings, push_adapter, fresh=True)
    push_button.click(pushing, [name, with_image], pushed, show_progress_on=hub_note,
                      **public(pushing, "push_adapter")).success(
        signed_in(settings, hub_line, quiet=True), pushed, hub_note, **PRIVATE)
    trying = signed_in(settings, try_character)
    try_button.click(trying, [name, scene, strength, try_seed, try_style], [tried_image, tried],
                     show_progress_on=tried_note, **public(trying, "try_character"),
                     **GPU).success(show_tried, tried, tried_note, **PRIVATE)
    tab.select(quiet_refresh, name, [name, no_characters], **PRIVATE).then(
        quiet_job, name, [job_note, cancel_button], **PRIVATE)
    demo.load(quiet_refresh, name, [name, no_characters], **PRIVATE).then(
        signed_in(settings, resume, quiet=True), None, [name, status, validation, hub_note],
        **PRIVATE)
