"""The book as one self-contained HTML file, to read or share offline: the same pages as the
PDF (cover, dedication, story pages, closing line, back cover) with the pictures inside, and a
"Read to me" button that reads it aloud with the browser's own speech synthesis, in the book's
language, the page being read highlighted.

Free text (titles, page text) is only ever text: escaped. The page allows no script but its
own (Content-Security-Policy with the script's hash) and loads nothing from anywhere.
"""
from __future__ import annotations

import base64
import hashlib
import html
from pathlib import Path

from ..book import Book, BookStore
from ..store import atomic_write_bytes
from .pages import BookSide, book_sides
from .pdf import Exported, check_ready

READ_ALOUD_JS = Path(__file__).with_name("read_aloud.js")
_BOOK_LOOP = """
(() => {
  const reader = window.taleweaverReader;
  const button = document.getElementById("tw-read");
  if (!reader.available()) return;
  button.hidden = false;
  const pages = Array.from(document.querySelectorAll("section[data-read]"));
  const done = () => { button.textContent = "Read to me"; };
  button.addEventListener("click", () => {
    if (reader.active()) { reader.stop(); done(); return; }
    button.textContent = "Stop reading";
    reader.read(pages[0], (page) => Promise.resolve(pages[pages.indexOf(page) + 1] || null),
                document.documentElement.lang, done);
  });
})();
"""


def read_aloud_script() -> str:
    """The JavaScript that reads a book aloud (window.taleweaverReader), for the HTML book and
    the app's gallery."""
    return READ_ALOUD_JS.read_text(encoding="utf-8")


def export_html(store: BookStore, book: Book, out: Path, *, draft: bool = False) -> Exported:
    """Write the book as one HTML file with its pictures inside (to read or share offline)."""
    check_ready(store, book, draft)
    sections = [_section(store, book, side) for side in book_sides(book)]
    script = read_aloud_script() + _BOOK_LOOP
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    document = _HTML_TEMPLATE.format(
        title=html.escape(book.title), body="\n".join(sections), script=script,
        script_hash=digest,
        lang=f' lang="{html.escape(book.language)}"' if book.language else "")
    atomic_write_bytes(Path(out), document.encode("utf-8"))
    return Exported(Path(out), len(sections), book.missing, "")


def _section(store: BookStore, book: Book, side: BookSide) -> str:
    """One page of the book as a <section>; data-read holds what reading aloud says."""
    def text(value: str) -> str:
        return html.escape(value).replace("\n", "<br>")

    def picture(file: str, alt: str) -> str:
        data = base64.b64encode(store.image_path(book, file).read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'

    read = f' data-read="{html.escape(side.spoken)}"' if side.spoken else ""
    if side.kind == "cover":
        body = (f'<h1 dir="auto">{text(side.title)}</h1>'
                + (picture(side.picture, side.title) if side.picture else "")
                + f'<p class="about" dir="auto">{text(side.text)}</p>')
    elif side.kind == "back":
        body = (f'<h2 dir="auto">{text(side.title)}</h2>'
                f'<p class="about" dir="auto">{text(side.text)}</p>')
    elif side.kind == "story":
        scene = book.page(side.number).scene
        body = ((picture(side.picture, scene) if side.picture else "")
                + f'<p dir="auto">{text(side.text)}</p><footer>{side.number}</footer>')
    else:
        body = f'<p dir="auto">{text(side.text)}</p>'
    return f'<section class="page {side.kind}"{read}>{body}</section>'


_HTML_TEMPLATE = """<!DOCTYPE html>
<html{lang}>
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
@page {{ size: 8.5in 8.5in; margin: 0.625in; }}
body {{ margin: 0; background: #f4f1ea; color: #26262e;
       font-family: Andika, "Andika New Basic", "Trebuchet MS", sans-serif; }}
.page {{ box-sizing: border-box; max-width: 8.5in; margin: 2rem auto; padding: 0.625in;
        background: #fff; text-align: center; break-after: page;
        transition: box-shadow 0.3s; }}
.page.tw-reading {{ box-shadow: 0 0 0 6px #f5c04a; }}
.dedication p, .back .about {{ color: #6e6e78; font-style: italic; }}
.dedication, .closing, .back {{ min-height: 3in; display: flex; flex-direction: column;
                               justify-content: center; }}
img {{ max-width: 100%; max-height: 75vh; width: auto; height: auto; }}
h1 {{ font-size: 2.2rem; margin: 0 0 1rem; overflow-wrap: anywhere; }}
h2 {{ font-size: 1.8rem; margin: 0; overflow-wrap: anywhere; }}
p {{ font-size: 1.3rem; line-height: 1.45; margin: 1rem auto 0; max-width: 90%; }}
.about {{ color: #6e6e78; }}
footer {{ color: #6e6e78; font-size: 0.8rem; margin-top: 1rem; }}
#tw-read {{ position: sticky; top: 0.75rem; display: block; margin: 0.75rem auto 0;
           font: inherit; font-size: 1.1rem; padding: 0.5rem 1.4rem; border-radius: 2rem;
           border: 1px solid #d9a93c; background: #fff3d1; color: #26262e; cursor: pointer;
           z-index: 1; }}
#tw-read[hidden] {{ display: none; }}
@media print {{
  body {{ background: none; }}
  #tw-read {{ display: none; }}
  .page {{ margin: 0; padding: 0; max-width: none; min-height: 7.2in; break-inside: avoid;
          display: flex; flex-direction: column; justify-content: center; box-shadow: none; }}
  img {{ max-height: 4.9in; align-self: center; }}
  p {{ font-size: 14pt; }}
}}
</style>
</head>
<body>
<button id="tw-read" type="button" hidden>Read to me</button>
{body}
<script>{script}</script>
</body>
</html>
"""
