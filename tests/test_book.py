import json
import threading

import pytest
from conftest import BOOK_TEXTS, make_picture
from PIL import Image

from pipeline import cli
from pipeline.book import MAX_TITLE_LENGTH, UNTITLED, Book, BookStore, Illustration, clean_title
from pipeline.store import StoreError
from pipeline.story import Page


def _pages(count: int) -> list[Page]:
    return [Page(f"Page {n} text.", f"scene {n}", ("Mia",)) for n in range(1, count + 1)]


def test_record_round_trips_through_disk(illustrated_book):
    store, book = illustrated_book
    record = json.loads((store.folder(book.id) / "book.json").read_text(encoding="utf-8"))
    assert record["version"] == 3 and record["title"] == "Mia & Grandma’s Cookie Night"
    assert [p["key"] for p in record["pages"]] == [1, 2, 3]
    assert [p["text"] for p in record["pages"]] == list(BOOK_TEXTS)
    again = store.get(book.id)
    assert again == book == Book.from_json(book.to_json())
    assert again.characters == ("Mia", "Grandma") and again.style == "watercolor"
    assert again.seed == 1234 and again.created <= again.updated
    page = again.page(2)
    assert page.scene == "scene 2" and page.characters == ("Mia",)
    assert page.seed == 1236 and page.chosen == Illustration("images/p02-1236.png", 1236,
                                                             "watercolor, scene 2")
    with Image.open(store.image_path(again, page.image)) as image:
        assert image.format == "PNG" and image.size == (1024, 1024)


def test_a_book_saved_with_prompts_reads_back_as_the_parents_scenes(book_settings):
    from pipeline.characters import CharacterStore
    from pipeline.story import scene_prompt

    mia = CharacterStore(book_settings, "alice").create(
        "Mia", "girl", "curly red hair", "ohwx", [(Image.new("RGB", (64, 64)), _crop())])
    store = BookStore(book_settings, "alice")
    book = store.create("Old", "watercolor", 1, [Page("Mia waves.", "Mia's kite in the wind",
                                                      ("Mia",))])
    record = book.to_json()
    record["version"] = 1  # as format 1 stored it: the scene as its prompt
    record["pages"][0]["scene"] = scene_prompt("Mia's kite in the wind", [mia])
    assert record["pages"][0]["scene"] == "ohwx girl's (curly red hair) kite in the wind"
    (store.folder(book.id) / "book.json").write_text(json.dumps(record), encoding="utf-8")
    assert store.get(book.id).page(1).scene == "Mia's kite in the wind"
    store.set_title(book.id, "Old, saved again")  # any change saves the new format
    saved = json.loads((store.folder(book.id) / "book.json").read_text(encoding="utf-8"))
    assert saved["version"] == 3 and saved["pages"][0]["scene"] == "Mia's kite in the wind"


def _crop():
    from pipeline.characters import Crop

    return Crop("", (64, 64), (0, 0, 64, 64), "mia.jpg")


def test_a_new_book_is_not_illustrated(book_settings):
    store = BookStore(book_settings, "alice")
    book = store.create("  A   quiet\nday ", "ink", 5, _pages(2))
    assert book.title == "A quiet day" and book.missing == (1, 2)
    assert book.page(1).seed is None and book.page(1).chosen is None and book.cover_image == ""
    with pytest.raises(StoreError, match="page 3 does not exist: this book has pages 1 to 2$"):
        book.page(3)
    assert store.thumbnail(book) is None
    single = store.create("One page", "ink", 5, _pages(1))
    with pytest.raises(StoreError, match="page 2 does not exist: this book has only page 1$"):
        single.page(2)


def test_candidates_choose_and_cover(illustrated_book):
    store, book = illustrated_book
    book = store.add_illustration(book.id, 1, make_picture(64, 64, 9), seed=9, prompt="again",
                                  choose=False)
    page = book.page(1)
    assert page.image == "images/p01-1235.png" and [c.seed for c in page.others] == [9]
    book = store.choose(book.id, 1, "images/p01-9.png")
    assert book.page(1).seed == 9 and [c.seed for c in book.page(1).others] == [1235]
    with pytest.raises(StoreError, match="not one of page 2's pictures"):
        store.choose(book.id, 2, "images/p01-9.png")

    assert book.cover_image == "images/p01-9.png"
    book = store.set_cover(book.id, "images/p03-1237.png")
    assert store.get(book.id).cover_image == "images/p03-1237.png"
    with pytest.raises(StoreError, match="not one of this book's pictures"):
        store.set_cover(book.id, "../../../etc/passwd")
    assert store.set_cover(book.id, "").cover_image == "images/p01-9.png"


def test_update_page_and_title_keep_pictures(illustrated_book, book_settings):
    store, book = illustrated_book
    book = store.update_page(book.id, 2, text="New words.", characters=["Rex", "Mia"])
    assert book.page(2).text == "New words." and book.page(2).scene == "scene 2"
    assert book.page(2).image == "images/p02-1236.png"
    assert book.characters == ("Mia", "Grandma", "Rex")
    with pytest.raises(StoreError, match="page 2: the text is .* the limit is"):
        store.update_page(book.id, 2, text="x" * (book_settings.max_page_chars + 1))
    assert store.set_title(book.id, "  Night   of cookies ").title == "Night of cookies"
    assert store.get(book.id).page(2).text == "New words."


def test_list_newest_first_and_gallery_thumbnails(illustrated_book):
    store, illustrated = illustrated_book
    plain = store.create("Second", "ink", 1, _pages(1))
    third = store.create("Third", "ink", 1, _pages(1))
    assert [b.id for b in store.list()] == [third.id, plain.id, illustrated.id]

    cards = store.gallery()
    assert [(c.title, c.pages, c.illustrated) for c in cards] == [
        ("Third", 1, 0), ("Second", 1, 0), ("Mia & Grandma’s Cookie Night", 3, 3)]
    assert cards[0].thumbnail is None
    thumb = cards[2].thumbnail
    with Image.open(thumb) as image:
        assert image.format == "PNG" and max(image.size) == 256
    made = thumb.stat().st_mtime_ns
    assert store.gallery()[2].thumbnail == thumb and thumb.stat().st_mtime_ns == made

    store.set_cover(illustrated.id, "images/p02-1236.png")
    assert store.gallery()[2].thumbnail.name == "p02-1236.png"


def test_damaged_record_is_left_out_of_the_list(illustrated_book):
    store, book = illustrated_book
    other = store.create("Other", "ink", 1, _pages(1))
    (store.folder(other.id) / "book.json").write_text("{broken")
    assert [b.id for b in store.list()] == [book.id]
    with pytest.raises(StoreError, match="damaged"):
        store.get(other.id)


def test_delete_removes_everything(illustrated_book):
    store, book = illustrated_book
    store.gallery()
    keep = store.create("Keep me", "ink", 1, _pages(1))
    store.delete(book.id)
    assert not store.folder(book.id).exists()
    assert [b.id for b in store.list()] == [keep.id]
    with pytest.raises(StoreError, match="no book with id"):
        store.get(book.id)
    with pytest.raises(StoreError, match="no book with id"):
        store.delete(book.id)
    with pytest.raises(StoreError, match="no book with id"):
        store.update_page(book.id, 1, text="x")
    assert sorted(p.name for p in store.root.iterdir()) == [keep.id]


@pytest.mark.parametrize("title, stored", [
    ("../../etc/passwd", "../../etc/passwd"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("", UNTITLED),
    ("   \n\t ", UNTITLED),
    ("סיפור על מיה וסבתא", "סיפור על מיה וסבתא"),
    ("قصة ميا", "قصة ميا"),
    ("\u202egnp.exe", "gnp.exe"),
    ("Mia\x1b[31m red\x00", "Mia [31m red"),
    ("é" * MAX_TITLE_LENGTH, "é" * MAX_TITLE_LENGTH),
])
def test_hostile_titles_are_only_text(book_settings, title, stored):
    store = BookStore(book_settings, "alice")
    book = store.create(title, "ink", 1, _pages(1))
    assert book.title == stored and store.get(book.id).title == stored
    assert book.id.isalnum() and book.id.isascii() and len(book.id) == 16
    files = sorted(str(p.relative_to(book_settings.data_dir)) for p in
                   book_settings.data_dir.rglob("*") if p.is_file())
    assert files == [f"users/alice/books/{book.id}/.lock",
                     f"users/alice/books/{book.id}/book.json"]


def test_overlong_titles_are_refused(book_settings):
    store = BookStore(book_settings, "alice")
    with pytest.raises(StoreError, match="title is 2000 characters long; the limit is 200"):
        store.create("x" * 2000, "ink", 1, _pages(1))
    book = store.create("Fine", "ink", 1, _pages(1))
    with pytest.raises(StoreError, match="the limit is 200"):
        store.set_title(book.id, "y" * 201)
    assert [b.title for b in store.list()] == ["Fine"]
    assert clean_title("a\u2066b\u2069c") == "a b c"


@pytest.mark.parametrize("bad", ["../x", "..", "", "a/b", "小明", "é", "x" * 65, "/etc"])
def test_book_ids_are_checked(book_settings, bad):
    store = BookStore(book_settings, "alice")
    with pytest.raises(StoreError, match="is not a book id"):
        store.get(bad)


def test_users_cannot_see_each_others_books(illustrated_book, book_settings):
    alice, book = illustrated_book
    bob = BookStore(book_settings, "bob")
    bob.create("Bob's book", "ink", 1, _pages(1))
    assert [b.title for b in bob.list()] == ["Bob's book"]
    assert [b.id for b in alice.list()] == [book.id]
    for attempt in (lambda: bob.get(book.id), lambda: bob.delete(book.id),
                    lambda: bob.set_cover(book.id, "")):
        with pytest.raises(StoreError, match="no book with id"):
            attempt()
    assert alice.get(book.id) == book


def test_concurrent_updates_lose_nothing(illustrated_book):
    store, book = illustrated_book
    book = store.create("Busy", "ink", 1, _pages(6))
    errors = []

    def writer(number: int) -> None:
        try:
            for round_ in range(4):
                store.add_illustration(book.id, number, make_picture(16, 16, round_),
                                       seed=100 * number + round_, prompt=f"try {round_}")
                store.update_page(book.id, number, text=f"page {number}, edit {round_}")
        except Exception as err:  # collected so the main thread can report it
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saved = store.get(book.id)
    for number, page in enumerate(saved.pages, start=1):
        assert page.text == f"page {number}, edit 3"
        assert [c.seed for c in page.candidates] == [100 * number + r for r in range(4)]
        assert page.seed == 100 * number + 3


def test_cli_books_and_delete_book(illustrated_book, book_settings, capsys):
    store, book = illustrated_book
    common = ["--data-dir", str(book_settings.data_dir), "--user", "alice"]
    assert cli.main(["books", "--json", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(b["id"], b["title"], b["illustrated"]) for b in listed] == [
        (book.id, book.title, 3)]
    assert set(listed[0]) == {"id", "title", "pages", "illustrated", "created", "updated",
                              "likeness", "layouts"}

    assert cli.main(["delete-book", book.id, *common]) == 0
    assert book.id in capsys.readouterr().out
    assert cli.main(["books", *common]) == 0
    assert capsys.readouterr().out.strip() == "No books yet."
    assert cli.main(["delete-book", book.id, *common]) == 1
    assert "no book with id" in capsys.readouterr().err


def test_gallery_survives_a_lost_cover_picture(illustrated_book):
    store, book = illustrated_book
    assert store.thumbnail(book) is not None
    store.image_path(book, book.cover_image).unlink()
    assert [(c.id, c.thumbnail) for c in store.gallery()] == [(book.id, None)]


def test_a_book_saved_before_page_keys_keeps_its_seeds_and_file_names(illustrated_book):
    store, book = illustrated_book
    record = book.to_json()
    record["version"] = 2  # as format 2 stored it: no keys, no dedication, closing, language
    for page in record["pages"]:
        del page["key"]
    for name in ("dedication", "closing", "language"):
        del record[name]
    (store.folder(book.id) / "book.json").write_text(json.dumps(record), encoding="utf-8")
    old = store.get(book.id)
    assert old == book and [p.key for p in old.pages] == [1, 2, 3]
    assert (old.dedication, old.closing, old.language) == ("", "", "")
    again = store.add_illustration(book.id, 3, make_picture(16, 16, 1), seed=77, prompt="p")
    assert again.page(3).image == "images/p03-77.png"  # named as before keys existed


def test_damaged_page_keys_are_refused(illustrated_book):
    store, book = illustrated_book
    record = book.to_json()
    record["pages"][1]["key"] = 1
    (store.folder(book.id) / "book.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(StoreError, match=r"damaged: its pages' keys \[1, 1, 3\]"):
        store.get(book.id)


def test_thumbnails_of_any_picture(illustrated_book):
    store, book = illustrated_book
    thumb = store.thumbnail(book, book.page(2).image)
    assert thumb.name == "p02-1236.png" and thumb.parent.name == "thumbs"
    with Image.open(thumb) as image:
        assert max(image.size) == 256
    assert store.thumbnail(book, "") is None
