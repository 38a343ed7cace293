"""Likeness on real SDXL: does a trained character look like its HELD-OUT photos on its pages?

    python bench/likeness.py CHARACTER_PHOTOS HELD_OUT_PHOTOS [--pages 12] [--styles all]
    python bench/likeness.py A_PHOTOS A_HELD_OUT --second B_PHOTOS B_HELD_OUT   # two per page
    python bench/likeness.py --demo --tiny --pages 2 --size 64x64 --steps 2     # CPU smoke run

CHARACTER_PHOTOS is a folder of photos to train on (about 8), HELD_OUT_PHOTOS a folder of other
photos of the same person that training never sees: likeness is measured against those, so a
picture that copies a training photo can't score well by copying. The script makes the
character (and trains it, or takes --adapter DIR), draws --pages pages over a fixed set of
scenes in each style through the app's own path (illustrate_book, no weak-page redraws, so the
figures are of single draws), and prints per style:

- found: the share of pages where the character's face is found;
- likeness: the mean and spread (standard deviation) of its 0-100 likeness to the held-out
  photos, over the pages where it is found;
- copied: the share of pages whose face is nearer to one training photo than drawings are;
- the same for the base model without the adapter (the control: it should score as a stranger).

With --second, pages show both characters ("A and B ...") and it prints, with the second pass
on and off: the share of pages where both are found, each one's likeness, and the share with a
swapped or blended identity (a face nearer to the other character). That is the evidence the
second pass works on real SDXL. On the CPU with the tiny model (--tiny) faces are simply not
found; the run checks that the bench itself works.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from pipeline import likeness  # noqa: E402
from pipeline.actions.books import new_book  # noqa: E402
from pipeline.actions.drawing import drawing_options  # noqa: E402
from pipeline.actions.characters import add_character  # noqa: E402
from pipeline.actions.training import pull, train  # noqa: E402
from pipeline.book import BookStore  # noqa: E402
from pipeline.characters import CharacterStore  # noqa: E402
from pipeline.illustrate import illustrate_book  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.styles import load_styles  # noqa: E402

USER = "bench"
SCENES = ("{a} reading a book under an apple tree", "{a} on a swing in a sunny park",
          "{a} building a sandcastle on the beach", "{a} baking cookies in a cosy kitchen",
          "a close-up of {a} smiling at the window", "{a} riding a red bicycle down a lane")
PAIRS = ("{a} and {b} reading a book under an apple tree", "{a} and {b} on a bench in a park",
         "{a} and {b} building a sandcastle", "{a} and {b} baking cookies in a kitchen")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, nargs="?", help="folder of training photos")
    parser.add_argument("held_out", type=Path, nargs="?", help="folder of held-out photos")
    parser.add_argument("--second", type=Path, nargs=2, metavar=("PHOTOS", "HELD_OUT"),
                        help="a second character: pages with both")
    parser.add_argument("--kind", default="woman", help="who the first character is")
    parser.add_argument("--second-kind", default="man")
    parser.add_argument("--adapter", type=Path, help="use this adapter folder, don't train")
    parser.add_argument("--model", default=None, help="base model (default: the setting's)")
    parser.add_argument("--tiny", action="store_true", help="build and use the tiny model")
    parser.add_argument("--demo", action="store_true",
                        help="photos from the test fixtures (scikit-image, matplotlib)")
    parser.add_argument("--pages", type=int, default=12, help="pages per style")
    parser.add_argument("--styles", default="all", help="comma-separated, or all")
    parser.add_argument("--size", default="", help="WIDTHxHEIGHT (default: the style's)")
    parser.add_argument("--steps", type=int, default=None, help="default: the style's")
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--resolution", type=int, default=None)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="taleweaver-likeness-"))
    settings = _settings(args, data)
    folders = _folders(args, data)
    names = ["Ava"] + (["Ben"] if folders[1] else [])
    kinds = [args.kind, args.second_kind]
    held = {}
    for name, kind, (photos, held_out) in zip(names, kinds, folders):
        _make(settings, name, kind, photos, args)
        held[name] = likeness.identity_from_images(_images(held_out))
        print(f"{name}: {len(held[name].descriptors)} held-out faces", file=sys.stderr)
    width, _, height = args.size.partition("x")
    styles = list(load_styles()) if args.styles == "all" else args.styles.split(",")
    for style in styles:
        options = dict(width=int(width or 0), height=int(height or 0), steps=args.steps or 0)
        if len(names) == 1:
            for label, weight in (("adapter", 1.0), ("control", None)):
                pages = _draw(settings, style, SCENES, names, args.pages, options, weight, True)
                _print_one(style, label, [_score(settings, page, names, held)[0]
                                          for page in pages])
        else:
            for face_pass in (True, False):
                pages = _draw(settings, style, PAIRS, names, args.pages, options, 1.0, face_pass)
                _print_two(style, face_pass, [_score(settings, page, names, held)
                                              for page in pages])


def _settings(args, data: Path) -> Settings:
    settings = Settings.from_env()
    if args.tiny:
        from pipeline.actions.system import make_tiny_model

        model, safety = make_tiny_model(data / "tiny")
        settings = dataclasses.replace(settings, base_model=str(model), vae="", device="cpu",
                                       safety_model=str(safety),
                                       resolution=args.resolution or 64)
    elif args.model:
        settings = dataclasses.replace(settings, base_model=args.model)
    if args.resolution:
        settings = dataclasses.replace(settings, resolution=args.resolution)
    return dataclasses.replace(settings, data_dir=data / "data", redraw_tries=0)


def _folders(args, data: Path) -> list:
    """[(photos, held out)] per character: the arguments, or the fixtures' with --demo."""
    if args.demo:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from photo_fixtures import face_variants

        variants = list(face_variants().items())
        train_dir, held_dir = data / "photos", data / "held-out"
        for folder, chosen in ((train_dir, variants[:4]), (held_dir, variants[4:])):
            folder.mkdir(parents=True)
            for name, image in chosen:
                image.save(folder / f"{name}.png")
        return [(train_dir, held_dir), None]
    if not (args.photos and args.held_out):
        raise SystemExit("give CHARACTER_PHOTOS and HELD_OUT_PHOTOS folders (or --demo)")
    return [(args.photos, args.held_out), tuple(args.second) if args.second else None]


def _images(folder: Path) -> list[Image.Image]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    return [Image.open(p).convert("RGB") for p in files]


def _make(settings: Settings, name: str, kind: str, photos: Path, args) -> None:
    files = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    add_character(dataclasses.replace(settings, min_photos=min(3, len(files))), USER, name,
                  kind, "", files)
    if args.adapter:
        pull(settings, USER, name, None, args.adapter)
        return
    options = {"steps": args.train_steps} if args.train_steps else {}
    trained = train(settings, USER, name, options=options, token=None, publish=False)
    print(f"{name}: trained {trained.result.step} steps in {trained.result.seconds:.0f} s",
          file=sys.stderr)


def _draw(settings, style, scenes, names, count, options, weight, face_pass) -> list:
    """Draw `count` pages (the scenes in turn) as the app does; None weight: no adapter (the
    control: the trigger words stay, the adapter doesn't)."""
    lines = [scenes[n % len(scenes)].format(a=names[0], b=names[-1]) for n in range(count)]
    book = new_book(settings, USER, f"{style} bench", "\n\n".join(lines), style, seed=1)
    config = drawing_options(**options, face_pass=face_pass, redraw_tries=0)
    if weight is None:
        return _control(settings, book, config)
    book = illustrate_book(settings, USER, book.id, config)
    store = BookStore(settings, USER)
    return [Image.open(store.image_path(book, page.image)).convert("RGB") for page in book.pages]


def _control(settings, book, config) -> list:
    """The same prompts drawn by the base model alone."""
    from pipeline.illustrate import _prompt, page_seed
    from pipeline.render import RenderJob, render
    from pipeline.styles import get_style

    style = get_style(book.style)
    cast = CharacterStore(settings, USER).list()
    pictures = []
    for number, page in enumerate(book.pages, start=1):
        job = RenderJob(prompt=_prompt(style, page, cast), negative=style.negative,
                        seeds=(page_seed(book.seed, number),),
                        width=config.width or style.width, height=config.height or style.height,
                        steps=config.steps or style.steps, guidance=style.guidance, adapters=())
        pictures.append(render(settings, job)[0].image)
    return pictures


def _score(settings, picture, names, held) -> list:
    """Each character's score against its held-out photos, with `copied` against its training
    photos."""
    store = CharacterStore(settings, USER)
    trained = {n: likeness.character_identity(store, store.get(n)) for n in names}
    against_held = likeness.score_page(picture, [(n, held[n]) for n in names])
    against_training = likeness.score_page(picture, [(n, trained[n]) for n in names])
    return [dataclasses.replace(h, copied=t.copied)
            for h, t in zip(against_held.characters, against_training.characters)]


def _print_one(style: str, label: str, scores: list) -> None:
    found = [s for s in scores if s.found]
    values = [s.likeness for s in found]
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    mean = f"{statistics.mean(values):5.1f}" if values else "  -  "
    print(f"{style:10} {label:8} found {len(found) / len(scores):5.0%}   likeness {mean} "
          f"± {spread:4.1f}   copied {sum(s.copied for s in scores) / len(scores):5.0%}   "
          f"({len(scores)} pages)")


def _print_two(style: str, face_pass: bool, pages: list) -> None:
    both = [p for p in pages if all(s.found for s in p)]
    swapped = [p for p in pages if any(s.looks_like for s in p)]
    each = []
    for index, name in enumerate(("Ava", "Ben")):
        values = [p[index].likeness for p in pages if p[index].found]
        each.append(f"{name} {statistics.mean(values):5.1f}" if values else f"{name}   -  ")
    print(f"{style:10} second pass {'on ' if face_pass else 'off'}  both found "
          f"{len(both) / len(pages):5.0%}   {'   '.join(each)}   swapped/blended "
          f"{len(swapped) / len(pages):5.0%}   ({len(pages)} pages)")


if __name__ == "__main__":
    main()
