"""Exercises for notebook 00 (setup and tour): two warm-ups that show how checks, hints and solutions work."""

from __future__ import annotations

import random

import torch

from ..tokenizers import split_words
from .core import ExerciseSet, Incorrect, Question, call, expect_shape

_SENTENCES = [
    "The more you know, the more you realize you don't know.",
    "The cat sat on the mat. The mat was red.",
    "A dog, a cat and a bird.",
]
_WORDS = ["the", "cat", "The", "Dog", "ran", "sat", "on", "a", "mat", "bird"]


def _random_sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 9))]
    return " ".join(words) + rng.choice([".", "!", ", then stopped."])


def _check_word_counts(word_counts) -> None:
    rng = random.Random(0)
    for text in _SENTENCES + [_random_sentence(rng) for _ in range(5)]:
        got = call(word_counts, text)
        want: dict[str, int] = {}
        for w in split_words(text, lower=True):
            want[w] = want.get(w, 0) + 1
        if not isinstance(got, dict):
            raise Incorrect(f"word_counts should return a dict (word -> count), got {type(got).__name__}")
        if got == want:
            continue
        if any(k != k.lower() for k in got):
            raise Incorrect(f"for {text!r} your counts have capital letters ({sorted(got)[:4]}...): "
                            "'The' and 'the' should count as the same word; lowercase first (lower=True).")
        if any(k and not k[-1].isalnum() and len(k) > 1 for k in got):
            raise Incorrect(f"for {text!r} some words still carry punctuation (e.g. 'know,'): text.split() "
                            "keeps it attached; use split_words(text, lower=True).")
        wrong = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))[:3]
        raise Incorrect(f"for {text!r} the counts differ for {wrong}: expected "
                        f"{ {k: want.get(k, 0) for k in wrong} }, got { {k: got.get(k, 0) for k in wrong} }")


def _check_make_grid(make_grid) -> None:
    for n, m in [(3, 4), (2, 5), (1, 1), (4, 2)]:
        got = call(make_grid, n, m)
        if not isinstance(got, torch.Tensor):
            raise Incorrect(f"make_grid should return a torch.Tensor, got {type(got).__name__}")
        if tuple(got.shape) == (m, n) and n != m:
            raise Incorrect(f"wrong shape: expected (rows={n}, cols={m}), got {tuple(got.shape)}: "
                            "rows and columns are swapped")
        expect_shape(got, (n, m), "rows cols")
        want = torch.arange(n * m).reshape(n, m)
        if torch.equal(got.to(want.dtype), torch.arange(n * m).reshape(m, n).T) and n > 1 and m > 1:
            raise Incorrect("the numbers run down the columns; they should run along the rows "
                            "(row 0 is 0, 1, 2, ...)")
        if not torch.equal(got.to(want.dtype), want):
            raise Incorrect(f"for n={n}, m={m} the first row should be {want[0].tolist()}, "
                            f"got {got[0].tolist()}")


EXERCISES = ExerciseSet("00", "Setup and tour", [
    Question(
        key="q1", title="Count the words", answer="word_counts", checker=_check_word_counts,
        hints=["Split the text into words with `split_words(text, lower=True)`, then count each one in a dict.",
               "`counts[w] = counts.get(w, 0) + 1` adds one to a count that may not exist yet."],
        solution='''
from course_utils.tokenizers import split_words

def word_counts(text):
    counts = {}
    for w in split_words(text, lower=True):
        counts[w] = counts.get(w, 0) + 1
    return counts
''',
        success="the bigram model of notebook 01 starts from counts just like these."),
    Question(
        key="q2", title="A grid of numbers", answer="make_grid", checker=_check_make_grid,
        hints=["`torch.arange(k)` gives 0, 1, ..., k-1; `.reshape(rows, cols)` arranges them row by row."],
        solution='''
def make_grid(n, m):
    return torch.arange(n * m).reshape(n, m)
''',
        success="shapes are (rows, columns); the course prints them wherever they matter."),
])
