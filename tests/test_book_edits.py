"""Editing a book once made (pipeline/book/edits.py and the edit actions in
pipeline/actions/books.py): pictures stay with their pages, seeds come from a page's own key,
a deleted page's pictures leave the disk, a page's new words find its characters again."""
import json

import numpy as np
import pytest
from conftest import make_crops, make_picture
from PIL import Image

from pipeline import cli
from pipeline.actions.books import edit_text, edit_words, insert_page, move_page, new_book
from pipeline.actions.drawing import illustrate, redraw_page
from pipeline.book import MAX_WORDS_LENGTH, BookStore, check_language, clean_words
from pipeline.characters import CharacterStore
from pipeline.illustrate import IllustrateConfig, page_seed
from pipeline.store import StoreError
from pipeline.story import Page, StoryError

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = IllustrateConfig(width=64, height=64, steps=2)
STORY = "The sun came up.\n\nThe boat left.\n\nThe wind blew.\n\nThe boat came home."


def _pictures(book) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Each page's chosen picture and its candidates' seeds, by page key."""
    return {p.key: (p.image, tuple(c.seed for c in p.candidates)) for p in book.pages}


def _pixels(settings, book, number):
    with Image.open(BookStore(settings, "local").image_path(book, book.page(number).image)) as im:
        return np.asarray(im.convert("RGB"))


def test_pictures_and_seeds_stay_with_their_pages(settings):
    book = illustrate(settings, "local", new_book(settings, "local", "Sea", STORY, seed=9).id,
                      TINY)
    drawn = _pictures(book)
    assert drawn[3][1] == (page_seed(9, 3),)

    book = move_page(settings, "local", book.id, 4, 1).book
    assert [p.text for p in book.pages] == ["The boat came home.", "The sun came up.",
                                            "The boat left.", "The wind blew."]
    book = insert_page(settings, "local", book.id, 2, "A gull sang.").book
    assert [p.key for p in book.pages] == [4, 1, 5, 2, 3] and book.missing == (3,)
    assert {k: v for k, v in _pictures(book).items() if k != 5} == drawn

    book = illustrate(settings, "local", book.id, TINY)  # only the new page is drawn
    assert book.page(3).seed == page_seed(9, 5) and book.page(3).image == "images/p05-" \
        f"{page_seed(9, 5)}.png"
    assert {k: v for k, v in _pictures(book).items() if k != 5} == drawn
    redrawn = redraw_page(settings, "local", book.id, 1, TINY)  # the page made 4th
    assert redrawn.page(1).seed == page_seed(9, 4) + 1
    assert redrawn.page(1).image == f"images/p04-{page_seed(9, 4) + 1}.png"


def test_a_moved_page_not_drawn_yet_is_drawn_as_where_it_was_made(settings):
    edited = new_book(settings, "local", "Edited", STORY, seed=4)
    plain = illustrate(settings, "local", new_book(settings, "local", "Plain", STORY, seed=4).id,
                       TINY)
    move_page(settings, "local", edited.id, 3, 1)
    edited = illustrate(settings, "local", edited.id, TINY)
    assert edited.page(1).text == "The wind blew." and edited.page(1).seed == page_seed(4, 3)
    assert np.array_equal(_pixels(settings, edited, 1), _pixels(settings, plain, 3))
    assert np.array_equal(_pixels(settings, edited, 4), _pixels(settings, plain, 4))


def test_a_deleted_pages_pictures_leave_the_disk(illustrated_book):
    store, book = illustrated_book
    book = store.add_illustration(book.id, 2, make_picture(32, 32, 5), seed=5, prompt="p",
                                  choose=False)
    book = store.set_cover(book.id, "images/p02-5.png")
    store.thumbnail(book)
    folder = store.folder(book.id)
    gone = [folder / "images/p02-1236.png", folder / "images/p02-5.png",
            folder / "thumbs/p02-5.png"]
    assert all(path.is_file() for path in gone)

    book = store.delete_page(book.id, 2)
    assert not any(path.exists() for path in gone)
    assert [p.key for p in book.pages] == [1, 3] and book.cover == ""
    assert book.cover_image == "images/p01-1235.png"
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["p01-1235.png",
                                                                    "p03-1237.png"]
    assert store.get(book.id) == book
    book = store.delete_page(book.id, 1)
    with pytest.raises(StoreError, match="a book needs at least one page: delete the book"):
        store.delete_page(book.id, 1)
    with pytest.raises(StoreError, match="page 2 does not exist: this book has only page 1"):
        store.delete_page(book.id, 2)


def test_new_words_find_the_characters_again_and_keep_the_picture(settings):
    characters = CharacterStore(settings, "local")
    for name, kind, trigger in (("Mia", "girl", "ohwx"), ("Rex", "dog", "zwx")):
        characters.create(name, kind, "", trigger, make_crops(3, 64, seed=1))
    story = "Mia woke up.\n\nMia ran.\nScene: Mia running on the beach"
    book = new_book(settings, "local", "Day", story, seed=1)
    store = BookStore(settings, "local")
    book = store.add_illustration(book.id, 1, make_picture(32, 32, 1), seed=1, prompt="p")

    edited = edit_text(settings, "local", book.id, 1, "  Mia and Rex woke up.\r\n")
    page = edited.book.page(1)
    assert (page.text, page.scene, page.characters) == ("Mia and Rex woke up.",
                                                        "Mia and Rex woke up.", ("Mia", "Rex"))
    assert page.image == book.page(1).image and edited.book.characters == ("Mia", "Rex")
    assert edited.message == ("Page 1 now shows Mia and Rex (before: Mia): redraw it so that "
                              "its picture matches.")

    edited = edit_text(settings, "local", book.id, 2, "Mia and Rex ran.")
    page = edited.book.page(2)
    assert (page.scene, page.characters) == ("Mia running on the beach", ("Mia",))
    assert edited.message == ("Rex is in the words but not in the scene of page 2's picture: "
                              "edit its scene to draw it too.")
    assert edit_text(settings, "local", book.id, 2, "Mia ran fast.").message == ""
    edited = edit_text(settings, "local", book.id, 1, "Then they slept.")
    assert edited.message == "Page 1 now shows nobody (before: Mia and Rex): redraw it so " \
                             "that its picture matches."
    assert insert_page(settings, "local", book.id, 0, "Rex barked.").message == \
        "Page 1 is new (Rex on it) and has no picture yet."


@pytest.mark.parametrize("text, error", [
    ("", "page 1: the text is empty"),
    ("  \n ", "page 1: the text is empty"),
    ("One.\n\nTwo.", "page 1: the text holds 2 pages"),
    ("x" * 1001, "page 1 has 1001 characters; the limit is 1000"),
])
def test_bad_words_are_refused_and_nothing_changes(book_settings, text, error):
    store = BookStore(book_settings, "alice")
    book = store.create("Words", "ink", 1, [Page("Hello.", "Hello.")])
    with pytest.raises(StoryError, match=error):
        store.set_text(book.id, 1, text, [])
    with pytest.raises(StoryError, match=error.replace("page 1", "the new page")):
        store.insert_page(book.id, 1, text, [])
    assert store.get(book.id) == book


def test_places_that_dont_exist_and_the_page_limit(book_settings):
    store = BookStore(book_settings, "alice")
    book = store.create("Two", "ink", 1, [Page("A.", "A."), Page("B.", "B.")])
    with pytest.raises(StoreError, match="can't move page 1 to page 3: this book has pages 1 "
                                         "to 2"):
        store.move_page(book.id, 1, 3)
    with pytest.raises(StoreError, match="page 0 does not exist"):
        store.move_page(book.id, 0, 1)
    with pytest.raises(StoreError, match=r"can't insert after page 3: .* \(0 inserts before"):
        store.insert_page(book.id, 3, "C.", [])
    small = BookStore(book_settings.__class__(data_dir=book_settings.data_dir, max_pages=2),
                      "alice")
    with pytest.raises(StoreError, match="this book has 2 pages, the limit"):
        small.insert_page(book.id, 2, "C.", [])
    assert store.get(book.id) == book


def test_pages_cant_move_while_they_are_drawn(illustrated_book):
    store, book = illustrated_book
    with store.drawing(book.id), store.drawing(book.id):  # drawers share the mark
        for change in (lambda: store.move_page(book.id, 1, 2),
                       lambda: store.insert_page(book.id, 1, "New.", []),
                       lambda: store.delete_page(book.id, 1)):
            with pytest.raises(StoreError, match=r"being drawn \(or moved\) right now; insert, "
                                                 "move or delete pages when that is done"):
                change()
        assert store.set_text(book.id, 1, "Still editable.", []).page(1).text == \
            "Still editable."
    assert store.move_page(book.id, 1, 2).page(2).text == "Still editable."


def test_dedication_closing_line_and_language(book_settings):
    store = BookStore(book_settings, "alice")
    book = store.create("Gift", "ink", 1, [Page("A.", "A.")])
    edited = edit_words(book_settings, "alice", book.id,
                        dedication="For Mia,\n\n\n on her  fourth birthday\u202e – love, Grandma",
                        language="fr_CA")
    assert edited.book.dedication == "For Mia,\n\non her fourth birthday – love, Grandma"
    assert edited.book.language == "fr-CA" and edited.message == "Saved the dedication and " \
                                                                 "language."
    edited = edit_words(book_settings, "alice", book.id, closing="Sweet dreams! 🌙")
    assert (edited.book.closing, edited.book.dedication) == ("Sweet dreams! 🌙",
                                                            edited.book.dedication)
    assert edit_words(book_settings, "alice", book.id, dedication="").book.dedication == ""
    with pytest.raises(StoreError, match=f"the closing line is 301 characters long; the limit "
                                         f"is {MAX_WORDS_LENGTH}"):
        clean_words("x" * 301, "closing line")
    for bad in ("english", "e", "en-", "<script>", "fr CA"):
        with pytest.raises(StoreError, match="is not a language tag"):
            check_language(bad)
    assert check_language(" de-CH ") == "de-CH" and check_language("") == ""
    saved = json.loads((store.folder(book.id) / "book.json").read_text(encoding="utf-8"))
    assert (saved["closing"], saved["language"]) == ("Sweet dreams! 🌙", "fr-CA")


def test_cli_edit_book(illustrated_book, book_settings, capsys):
    store, book = illustrated_book
    common = ["--data-dir", str(book_settings.data_dir), "--user", "alice"]

    def run(*args):
        code = cli.main(["edit-book", book.id, *args, *common])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("--dedication", "For Mia, on her fourth birthday - love, Grandma",
                       "--language", "en")
    assert code == 0 and out.startswith("Saved the dedication and language.")
    code, out, _ = run("--page", "2", "--text", "Rex snored.", "--json")
    result = json.loads(out)
    assert code == 0 and result["book"]["pages"][1]["text"] == "Rex snored."
    assert result["book"]["dedication"] == "For Mia, on her fourth birthday - love, Grandma"
    assert run("--insert-after", "3", "--text", "The end of the night.")[1].startswith(
        "Page 4 is new (nobody on it) and has no picture yet.")
    assert run("--move", "4", "--to", "1")[1].startswith("Page 4 is now page 1.")
    assert run("--delete-page", "1")[1].startswith("Deleted page 1.")
    code, out, _ = run("--delete-page", "3")
    assert out.startswith("Deleted page 3 and its 1 picture.")
    assert [p.text for p in store.get(book.id).pages] == [
        "Mia and Grandma baked “magic” cookies: crème brûlée, of course! 🍪", "Rex snored."]
    for args, error in ((["--page", "1"], "--text goes with --page N or --insert-after N"),
                        (["--move", "1"], "--move N needs --to M"),
                        (["--delete-page", "1", "--move", "1", "--to", "2"],
                         "one page change at a time: --delete-page and --move"),
                        ([], "nothing to change"),
                        (["--page", "9", "--text", "x"], "page 9 does not exist"),
                        (["--language", "klingon!"], "is not a language tag")):
        code, _, err = run(*args)
        assert code == 1 and error in err, args
