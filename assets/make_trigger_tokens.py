"""Rebuild assets/trigger_tokens.txt: rare single-token CLIP words that are not real words.

Not part of the app: it needs CLIP's BPE merges and the `wordfreq` package, neither of which
Taleweaver depends on. To run it:

    pip download --no-deps --only-binary=:all: open_clip_torch -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl 'open_clip/bpe_simple_vocab_16e6.txt.gz' -d /tmp/oc
    pip install wordfreq
    python assets/make_trigger_tokens.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz

SDXL's two text encoders (CLIP ViT-L and OpenCLIP ViT-bigG) share this BPE vocabulary.
"""
from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

from wordfreq import top_n_list, zipf_frequency

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "pl")
MIN_RANK = 10_000  # skip the 10,000 most frequent merges of 48,894
MAX_ZIPF = 1.5  # rarer than ~30 uses per billion words in each language above
EXCLUDED = {"avgeek", "asroma", "nomnom", "brewco"}  # tags with a strong picture (planes, food...)
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


def main(vocab: Path) -> None:
    merges = load_merges(vocab)
    ranks = {pair: i for i, pair in enumerate(merges)}
    common = {w for lang in LANGUAGES for w in top_n_list(lang, 50_000 if lang == "en" else 20_000)
              if w.isalpha()}
    english = top_n_list("en", 10_000)
    inner = [w for i, w in enumerate(english)
             if w.isalpha() and (len(w) >= 4 or (len(w) == 3 and i < 3000))]
    chosen = []
    for rank, (left, right) in enumerate(merges):
        token = left + right
        word = token[:-len("</w>")]
        if (rank < MIN_RANK or not token.endswith("</w>")
                or not re.fullmatch(r"[a-z]{3,6}", word) or re.search(r"(.)\1\1", word)
                or word.endswith("fc") or word in EXCLUDED  # football clubs (kits), ...
                or bpe(word, ranks) != [token]
                or max(zipf_frequency(word, lang) for lang in LANGUAGES) >= MAX_ZIPF
                or any(w.endswith(word) for w in common if len(w) > len(word))
                or any(w in word for w in inner)):
            continue
        chosen.append(word)
    header = [
        "# Trigger tokens for character adapters: one per line, made by assets/make_trigger_tokens.py",
        "# from CLIP's BPE vocabulary (open_clip_torch 3.3.0, bpe_simple_vocab_16e6.txt.gz) and",
        "# wordfreq 3.1.1. Each is 3-6 lowercase ASCII letters; CLIP's tokenizer encodes it alone",
        f"# as exactly one token; its merge rank is >= {MIN_RANK} (the rarer part of the vocabulary);",
        f"# its wordfreq Zipf frequency is < {MAX_ZIPF} in {', '.join(LANGUAGES)}; it is not the tail",
        "# of a common word (no fragments like 'gypt') and contains no common English word; no",
        "# football-club tags and a few tags with a strong picture. Order: merge rank.",
    ]
    OUT.write_text("\n".join(header + chosen) + "\n", encoding="utf-8")
    print(f"{len(chosen)} tokens written to {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
