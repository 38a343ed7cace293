"""Rebuild assets/trigger_tokens.txt: rare single-token CLIP words that are not real words or names.

Not part of the app: it needs CLIP's BPE merges and the `wordfreq` and `names-dataset` packages,
none of which Taleweaver depends on (names-dataset takes about 2 GB of memory for ten seconds).
To run it, in a throwaway virtual environment:

    pip download --no-deps --only-binary=:all: open_clip_torch==3.3.0 -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl 'open_clip/bpe_simple_vocab_16e6.txt.gz' -d /tmp/oc
    pip install wordfreq==3.1.1 names-dataset==3.3.1
    python assets/make_trigger_tokens.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz

SDXL's two text encoders (CLIP ViT-L and OpenCLIP ViT-bigG) share this BPE vocabulary.
"""
from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

from names_dataset import NameDataset
from wordfreq import top_n_list, zipf_frequency

# Every Latin-script language wordfreq knows: a token found in any of its word lists is a word
# someone reads (Indonesian "iklan", Tagalog "kilig", Italian "meria" ...).
LANGUAGES = ("ca", "cs", "da", "de", "en", "es", "fi", "fil", "fr", "hu", "id", "is", "it", "lt",
             "lv", "ms", "nb", "nl", "pl", "pt", "ro", "sh", "sk", "sl", "sv", "tr", "vi")
MIN_RANK = 10_000  # skip the 10,000 most frequent merges of 48,894
# Reviewed by eye: what the rules above let through but a parent would read as something, or
# that already has a strong picture in the text encoders.
EXCLUDED = {
    "avgeek", "asroma", "nomnom", "brewco",  # planes, a football club, food, beer
    "iamsrk", "srisri", "kineni", "jarpad", "wwenxt",  # celebrities, actors, wrestlers
    "ungsoo", "ghyun", "rabhu",  # fragments of celebrities' names
    "mlpfim", "afcb", "hsfb", "txhsfb", "spdwy",  # a cartoon, football kits, racing cars
    "aceae",  # the ending of plant family names: pictures of plants
    "ilysm", "friyay", "govuk", "dotorg", "itup", "shoops",  # read as words or addresses
    "nigan", "myjaps",  # too close to slurs
}
OUT = Path(__file__).with_name("trigger_tokens.txt")


def load_merges(path: Path) -> list[tuple[str, str]]:
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]


def bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's byte-pair encoding of one lowercase ASCII word (its letters map to themselves)."""
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    while len(parts) > 1:
        rank, first = min((ranks.get(pair, sys.maxsize), i)
                          for i, pair in enumerate(zip(parts, parts[1:])))
        if rank == sys.maxsize:
            break
        pair, merged, i = (parts[first], parts[first + 1]), [], 0
        while i < len(parts):
            if tuple(parts[i:i + 2]) == pair:
                merged.append(pair[0] + pair[1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def single_tokens(merges: list[tuple[str, str]]) -> list[str]:
    """Rare whole-word merges of 3-6 letters that CLIP encodes as exactly one token."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    found = []
    for rank, (left, right) in enumerate(merges[MIN_RANK:], start=MIN_RANK):
        word = (left + right)[:-len("</w>")]
        if ((left + right).endswith("</w>") and re.fullmatch(r"[a-z]{3,6}", word)
                and not re.search(r"(.)\1\1", word) and bpe(word, ranks) == [word + "</w>"]):
            found.append(word)
    return found


def is_wordlike(word: str, common: set[str], inner: list[str]) -> bool:
    """In a word list of any language, the tail of a common word ('gypt'), or holding a common
    English word; football-club tags ('...fc') too, whose kits are a strong picture."""
    return (word.endswith("fc") or any(zipf_frequency(word, lang) > 0 for lang in LANGUAGES)
            or any(w.endswith(word) for w in common if len(w) > len(word))
            or any(w in word for w in inner))


def is_name(word: str, names: NameDataset) -> bool:
    """A first name or surname ranked in some country's list of names-dataset."""
    found = names.search(word)
    return any(rank is not None for kind in ("first_name", "last_name")
               for rank in ((found.get(kind) or {}).get("rank") or {}).values())


def main(vocab: Path) -> None:
    common = {w for lang in LANGUAGES for w in top_n_list(lang, 50_000 if lang == "en" else 20_000)
              if w.isalpha()}
    english = top_n_list("en", 10_000)
    inner = [w for i, w in enumerate(english)
             if w.isalpha() and (len(w) >= 4 or (len(w) == 3 and i < 3000))]
    candidates = [w for w in single_tokens(load_merges(vocab))
                  if w not in EXCLUDED and not is_wordlike(w, common, inner)]
    names = NameDataset()
    chosen = [w for w in candidates if not is_name(w, names)]
    header = [
        "# Trigger tokens for character adapters: one per line, made by assets/make_trigger_tokens.py",
        "# from CLIP's BPE vocabulary (open_clip_torch 3.3.0, bpe_simple_vocab_16e6.txt.gz),",
        "# wordfreq 3.1.1 and names-dataset 3.3.1. Each is 3-6 lowercase ASCII letters; CLIP's",
        f"# tokenizer encodes it alone as exactly one token; its merge rank is >= {MIN_RANK} (the",
        "# rarer part of the vocabulary); it is in no wordfreq word list of 27 Latin-script",
        "# languages, not the tail of a common word (no fragments like 'gypt'), contains no common",
        "# English word and is no ranked first name or surname; no football-club tags, and a few",
        "# more left out by eye (celebrities, slang, franchises). Order: merge rank.",
    ]
    OUT.write_text("\n".join(header + chosen) + "\n", encoding="utf-8")
    print(f"{len(chosen)} tokens written to {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
