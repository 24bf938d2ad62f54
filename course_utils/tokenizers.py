"""Character and word tokenizers: text -> list of integer ids -> text.

Both build their vocabulary from training text, sorted so the ids never depend on the order of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import VocabularyError

WORD_PATTERN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")


class CharTokenizer:
    """One id per distinct character of the training text.

    >>> tok = CharTokenizer("hello")
    >>> tok.encode("hell"), tok.decode([1, 0])
    ([1, 0, 2, 2], 'eh')
    """

    def __init__(self, text: str):
        if not text:
            raise ValueError("CharTokenizer needs some training text to build its vocabulary from.")
        self.itos: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError:
            unknown = next(ch for ch in text if ch not in self.stoi)
            raise VocabularyError(unknown, self.itos, what="character") from None

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
            out.append(self.itos[i])
        return "".join(out)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def split_words(text: str, lower: bool = False) -> list[str]:
    """Split text into words and punctuation marks: "don't know." -> ["don't", "know", "."]."""
    words = WORD_PATTERN.findall(text)
    return [w.lower() for w in words] if lower else words


class WordTokenizer:
    """One id per distinct word (and punctuation mark) of the training text.

    Words that occur fewer than ``min_count`` times share the id of ``unk`` if one is given; without ``unk``,
    an unknown word is an error that names it and suggests close ones.
    """

    def __init__(self, text: str, lower: bool = False, min_count: int = 1, unk: str | None = None):
        words = split_words(text, lower)
        if not words:
            raise ValueError("WordTokenizer needs some training text with words in it.")
        counts: dict[str, int] = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
        self.lower = lower
        self.unk = unk
        vocab = sorted(w for w, c in counts.items() if c >= min_count)
        if unk is not None and unk not in vocab:
            vocab.insert(0, unk)
        self.itos: list[str] = vocab
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(vocab)}
        self.counts = counts

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        ids = []
        for w in split_words(text, self.lower):
            if w in self.stoi:
                ids.append(self.stoi[w])
            elif self.unk is not None:
                ids.append(self.stoi[self.unk])
            else:
                raise VocabularyError(w, self.itos)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        words = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
            words.append(self.itos[i])
        text = " ".join(words)
        return re.sub(r" ([.,;:!?)])", r"\1", text)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size}, lower={self.lower})"
