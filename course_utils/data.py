"""The course's data: Wikipedia prose derived from the dump gensim ships, small example texts, splits, batches.

Nothing here downloads anything. ``wiki_text()`` parses the article excerpt inside the installed gensim package,
cleans it and caches the result under ``data/cache/`` together with its SHA-256, so a damaged cache is rebuilt.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import re
import unicodedata
import warnings
from pathlib import Path

import torch

from .errors import ShapeError

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
WIKI_CACHE_VERSION = 1  # bump when the cleaning changes, so old caches are rebuilt

# The sentence the course opens with.
OPENING_SENTENCE = "The more you know, the more you realize you don't know."

SMALL_CORPUS: dict[str, str] = {
    "opening": OPENING_SENTENCE,
    "cat": "The cat sat on the mat.",
    "animals": ("The cat sat on the mat. The dog sat on the rug. The cat chased the dog. "
                "The dog chased the ball. A cat is a small animal. A dog is a loyal animal."),
    "bank": "I sat by the bank of the river. I put my money in the bank.",
}

_TAIL_SECTIONS = {"see also", "references", "external links", "further reading", "notes", "bibliography",
                  "sources", "citations", "footnotes", "notes and references", "works cited"}
_PUNCTUATION_FOLD = {"\u2013": "-", "\u2014": " - ", "\u2212": "-", "\u2018": "'", "\u2019": "'",
                     "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00a0": " ", "\u00d7": "x"}


def small_corpus(name: str = "opening") -> str:
    """One of the small example texts written for the course (see ``SMALL_CORPUS`` for the names)."""
    if name not in SMALL_CORPUS:
        raise KeyError(f"No small corpus called {name!r}. Available: {', '.join(SMALL_CORPUS)}")
    return SMALL_CORPUS[name]


def cache_dir() -> Path:
    """Where derived data is cached: ``$COURSE_CACHE_DIR``, else ``data/cache`` in the repository."""
    if os.environ.get("COURSE_CACHE_DIR"):
        path = Path(os.environ["COURSE_CACHE_DIR"])
    else:
        repo = Path(__file__).resolve().parent.parent
        path = repo / "data" / "cache" if (repo / "pyproject.toml").exists() else (
            Path.home() / ".cache" / "math-inside-llms")
    path.mkdir(parents=True, exist_ok=True)
    return path


def fold_to_ascii(text: str) -> str:
    """Fold text to printable ASCII plus newline: accents stripped by decomposition, anything else dropped."""
    for src, dst in _PUNCTUATION_FOLD.items():
        text = text.replace(src, dst)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch == "\n" or " " <= ch <= "~")


def clean_wiki_article(markup: str) -> str:
    """Turn one article's wiki markup into plain prose paragraphs separated by newlines."""
    from gensim.corpora.wikicorpus import filter_wiki

    text = filter_wiki(markup)
    text = re.sub(r"'{2,}", "", text)                 # bold / italic quotes
    text = re.sub(r"<[^>\n]*>", "", text)             # stray tags
    text = re.sub(r"\{\{[^{}]*\}\}", "", text)         # leftover templates
    text = text.replace("[[", "").replace("]]", "")
    paragraphs = []
    for line in text.split("\n"):
        line = line.strip()
        heading = re.fullmatch(r"=+\s*(.*?)\s*=+", line)
        if heading:
            if heading.group(1).strip().lower() in _TAIL_SECTIONS:
                break                                   # bibliography and link lists: not prose
            continue                                    # other headings are dropped
        if line.startswith(("{|", "|", "!", "|}")):
            continue                                    # table remnants
        line = re.sub(r"^[*#:;]+\s*", "", line)          # list bullets and indents
        line = fold_to_ascii(line)
        line = re.sub(r"\(\s*[,;]?\s*\)", "", line)       # brackets emptied by removed templates
        line = re.sub(r"[ \t]+", " ", line).strip()
        line = re.sub(r" ([,.;:])", r"\1", line)
        if len(line.split()) >= 4:                      # drop fragments and captions
            paragraphs.append(line)
    return "\n".join(paragraphs)


def _build_wiki_text() -> str:
    from gensim.corpora.wikicorpus import extract_pages
    from gensim.test.utils import datapath

    articles = []
    with bz2.open(datapath(WIKI_DUMP), "rb") as dump:
        for _title, markup, _pageid in extract_pages(dump):
            if markup.lstrip().lower().startswith("#redirect"):
                continue                                # redirect stubs
            article = clean_wiki_article(markup)
            if article:
                articles.append(article)
    return "\n\n".join(articles) + "\n"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def wiki_text(rebuild: bool = False) -> str:
    """About 3 MB of clean English Wikipedia prose (printable ASCII + newline), identical on every run.

    Built from the article excerpt gensim ships on first use (a few seconds), then read from the cache.
    A cache whose content does not match its recorded SHA-256 is rebuilt, with a warning.
    """
    folder = cache_dir()
    text_path, meta_path = folder / "wiki_text.txt", folder / "wiki_text.json"
    if not rebuild and text_path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            text = text_path.read_text(encoding="utf-8")
            if meta.get("version") == WIKI_CACHE_VERSION and meta.get("sha256") == _sha256(text):
                return text
            warnings.warn(f"The cached Wikipedia text in {folder} is damaged or out of date; rebuilding it.",
                          stacklevel=2)
        except (OSError, ValueError, UnicodeDecodeError):
            warnings.warn(f"The cached Wikipedia text in {folder} could not be read; rebuilding it.",
                          stacklevel=2)
    text = _build_wiki_text()
    tmp = text_path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, text_path)
    meta_path.write_text(json.dumps({"version": WIKI_CACHE_VERSION, "sha256": _sha256(text),
                                     "characters": len(text)}))
    return text


def train_val_split(data, val_fraction: float = 0.1):
    """Split a sequence (str, list or 1-D tensor) into its first (1 - f) and last f part. Deterministic."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n = int(len(data) * (1.0 - val_fraction))
    if n == 0 or n == len(data):
        raise ValueError(f"Cannot split a sequence of length {len(data)} with val_fraction={val_fraction}")
    return data[:n], data[n:]


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of a 1-D token tensor for next-token prediction.

    Returns ``x`` and ``y`` of shape (batch_size, block_size), where ``y[b, t] = data[start_b + t + 1]``:
    each target is the token that follows its input.
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ShapeError(f"data should be a 1-D tensor of token ids, shape (N,); got {got}")
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens; it needs more than block_size={block_size}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = data[starts[:, None] + offsets]
    y = data[starts[:, None] + offsets + 1]
    return x.to(device), y.to(device)
