"""Clear errors for bad input, raised before torch would fail somewhere deep inside."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import torch


class ShapeError(ValueError):
    """A tensor does not have the shape a function expects."""


class VocabularyError(KeyError):
    """A word or symbol is not in the vocabulary. The message names it and suggests close ones."""

    def __init__(self, token: str, known: Iterable[str], what: str = "word", limit: int = 5):
        self.token = token
        candidates = known if isinstance(known, Sequence) else list(known)
        self.suggestions = difflib.get_close_matches(str(token), candidates, n=limit, cutoff=0.6)
        hint = f" Did you mean: {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        self.message = f"{what} {token!r} is not in the vocabulary.{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return self.message


def check_shape(x: torch.Tensor, expected: Sequence[int | str | None], name: str = "x") -> None:
    """Raise :class:`ShapeError` unless ``x`` has len(expected) dims and matches every int in ``expected``.

    ``expected`` mixes ints (must match) and names or None (any size), e.g. ``("B", "T", 64)``.
    """
    spec = "(" + ", ".join(str(e) for e in expected) + ")"
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} should be a torch.Tensor of shape {spec}, got {type(x).__name__}")
    if x.dim() != len(expected):
        raise ShapeError(f"{name} should have shape {spec} ({len(expected)} dims), got {tuple(x.shape)}")
    for size, want in zip(x.shape, expected, strict=True):
        if isinstance(want, int) and size != want:
            raise ShapeError(f"{name} should have shape {spec}, got {tuple(x.shape)}")
