"""Self-checking exercises: ``ex.q1.check(answer)``, ``ex.q1.hint()``, ``ex.q1.solution()``.

A learner fills in a blank (``____``) in an *answer cell*, then runs the check cell. A check runs the answer
against the reference on several cases and says in plain words what is wrong. It never raises in the learner's
notebook: an unfilled blank says "not attempted yet". With ``COURSE_CHECKS_STRICT=1`` (used when the answer key is
tested) a check that does not pass raises :class:`CheckFailed`.

Writing a question: a ``checker(answer)`` function raises :class:`Incorrect` with a message the learner can act
on; it uses :func:`call` to run the learner's function, so blanks, ``NotImplementedError`` and crashes in the
learner's code all become feedback instead of tracebacks.
"""

from __future__ import annotations

import html
import math
import os
import textwrap
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

STRICT_ENV_VAR = "COURSE_CHECKS_STRICT"


class _Blank:
    """The blank a learner replaces. Any answer that is (or returns) the blank counts as not attempted."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "____"

    def __bool__(self) -> bool:
        return False


____ = _Blank()
BLANK = ____


class Incorrect(Exception):
    """Raised by a checker: the answer is wrong, and the message says how."""


class NotAttempted(Exception):
    """Raised by a checker: the answer still holds the blank."""


class LearnerCodeError(Exception):
    """The learner's function raised; the message names the exception."""


class CheckFailed(AssertionError):
    """In strict mode (answer key tests) a check that did not pass raises this."""


def is_blank(value: Any) -> bool:
    return value is BLANK


def call(fn: Any, *args, **kwargs):
    """Run the learner's function on one case. Blank or NotImplementedError -> not attempted; a crash -> feedback."""
    if is_blank(fn):
        raise NotAttempted()
    if not callable(fn):
        raise Incorrect(f"expected a function, got {type(fn).__name__}: {fn!r:.80}")
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted() from None
    except Exception as err:  # the learner's bug becomes a message, not a traceback
        frames = traceback.extract_tb(err.__traceback__)
        where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames and frames[-1].line else ""
        raise LearnerCodeError(f"your function raised {type(err).__name__}: {err}{where}") from None
    if is_blank(result) or (isinstance(result, tuple) and any(is_blank(r) for r in result)):
        raise NotAttempted()
    return result


# ---- helpers checkers use to explain what is wrong ------------------------------------------------------------

def as_tensor(value: Any, name: str = "your answer") -> torch.Tensor:
    """Accept a tensor, NumPy array or number; anything else is Incorrect."""
    if is_blank(value):
        raise NotAttempted()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray | float | int | np.floating | np.integer):
        return torch.as_tensor(np.asarray(value))
    if isinstance(value, list | tuple):
        try:
            return torch.as_tensor(value)
        except (TypeError, ValueError):
            pass
    raise Incorrect(f"{name} should be a tensor (or array / number), got {type(value).__name__}")


def describe_shape(shape: Sequence[int], names: str | None) -> str:
    """(2, 5, 5) with names 'B T T' -> '(B=2, T=5, T=5)'."""
    if not names:
        return str(tuple(shape))
    return "(" + ", ".join(f"{n}={s}" for n, s in zip(names.split(), shape, strict=False)) + ")"


def expect_shape(value: Any, shape: Sequence[int], names: str | None = None, name: str = "your answer",
                 known: dict[tuple[int, ...], str] | None = None):
    """Incorrect unless the value's shape equals ``shape``; ``names`` like 'B T T' make the message readable.

    ``known`` maps wrong shapes that a likely mistake produces to an explanation added to the message, e.g.
    ``{(B, T, T): "that is the shape of the weights; return weights @ v"}``.
    """
    t = as_tensor(value, name)
    if tuple(t.shape) != tuple(shape):
        message = f"wrong shape: expected {describe_shape(shape, names)}, got {describe_shape(t.shape, None)}"
        why = (known or {}).get(tuple(t.shape))
        raise Incorrect(f"{message} - {why}" if why else message)
    return t


def expect_close(value: Any, expected: Any, what: str = "the values", atol: float = 1e-5, rtol: float = 1e-4,
                 names: str | None = None, name: str = "your answer") -> torch.Tensor:
    """Incorrect unless the shapes match and every entry is within tolerance; says where the largest gap is."""
    want = torch.as_tensor(expected).detach().cpu()
    got = expect_shape(value, tuple(want.shape), names, name)
    if not torch.is_floating_point(got) and torch.is_floating_point(want):
        got = got.double()
    if torch.isnan(got).any() and not torch.isnan(want).any():
        raise Incorrect(f"{what}: your answer contains NaN (not a number). Look for 0/0 or inf - inf.")
    if not torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol, equal_nan=True):
        diff = (got.double() - want.double()).abs()
        diff = torch.nan_to_num(diff, nan=float("inf"))
        idx = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(diff.shape))) if diff.dim() else ()
        if diff.dim():
            detail = f" at index {idx}: expected {want[idx].item():.6g}, got {got[idx].item():.6g}"
        else:
            detail = f": expected {want.item():.6g}, got {got.item():.6g}"
        raise Incorrect(f"{what} are not right{detail}")
    return got


def expect_number(value: Any, expected: float, what: str = "the value", rel: float = 1e-3,
                  abs_tol: float = 1e-6) -> float:
    """Incorrect unless ``value`` is a number within tolerance of ``expected``."""
    if is_blank(value):
        raise NotAttempted()
    if isinstance(value, torch.Tensor | np.ndarray):
        if value.size == 1 if isinstance(value, np.ndarray) else value.numel() == 1:
            value = float(value.item())
        else:
            raise Incorrect(f"{what} should be a single number, got an array of shape {tuple(value.shape)}")
    if not isinstance(value, int | float | np.floating | np.integer):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}")
    if not math.isclose(float(value), expected, rel_tol=rel, abs_tol=abs_tol):
        raise Incorrect(f"{what} should be {expected:.6g}, got {float(value):.6g}")
    return float(value)



def is_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Same shape and every entry within tolerance (compared in float64)."""
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol))


def diagnose(got: torch.Tensor, want: torch.Tensor, suspects: Sequence[tuple[torch.Tensor, str]], what: str,
             atol: float = 1e-5) -> None:
    """Pass if right; if the answer equals a known wrong answer, raise Incorrect with that mistake's message;
    otherwise say where the largest gap is. ``suspects`` pairs each plausible wrong answer with its explanation."""
    if is_close(got, want, atol=atol):
        return
    for wrong, message in suspects:
        if is_close(got, wrong, atol=atol):
            raise Incorrect(message)
    expect_close(got, want, what=what, atol=atol)


# ---- feedback -------------------------------------------------------------------------------------------------

_COLOURS = {"correct": ("#1b7f3b", "#e8f5ec"), "incorrect": ("#b3261e", "#fdecea"),
            "not attempted": ("#8a5a00", "#fff6e0"), "hint": ("#1f5fa8", "#e8f0fb"),
            "solution": ("#444444", "#f4f4f4")}


@dataclass
class Feedback:
    """What a check says. ``status`` is 'correct', 'incorrect' or 'not attempted'. Renders as HTML in Jupyter."""

    label: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def _headline(self) -> str:
        return {"correct": "Correct", "incorrect": "Incorrect", "not attempted": "Not attempted yet"}.get(
            self.status, self.status.capitalize())

    def __str__(self) -> str:
        return f"[{self.label}] {self._headline()}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        fg, bg = _COLOURS.get(self.status, _COLOURS["solution"])
        return (f'<div style="border-left:4px solid {fg};background:{bg};padding:6px 10px;margin:4px 0">'
                f'<b style="color:{fg}">{html.escape(self.label)} &mdash; {self._headline()}:</b> '
                f"{html.escape(self.message)}</div>")


@dataclass
class _Panel:
    """A hint or a solution, shown as coloured HTML in Jupyter and as plain text elsewhere."""

    kind: str
    label: str
    text: str
    code: bool = False

    def __str__(self) -> str:
        return f"[{self.label}] {self.kind.capitalize()}:\n{self.text}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        fg, bg = _COLOURS[self.kind]
        body = (f"<pre style='margin:4px 0'>{html.escape(self.text)}</pre>" if self.code
                else html.escape(self.text))
        return (f'<div style="border-left:4px solid {fg};background:{bg};padding:6px 10px;margin:4px 0">'
                f'<b style="color:{fg}">{html.escape(self.label)} &mdash; {self.kind.capitalize()}:</b> '
                f"{body}</div>")


def show(obj: Any) -> None:
    """Display rich output in Jupyter, or print it anywhere else."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(obj)
            return
    except ImportError:
        pass
    print(str(obj))


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


# ---- questions ------------------------------------------------------------------------------------------------

class Question:
    """One exercise.

    key:        'q1', 'q2', ... (the attribute name on the exercise set)
    title:      a short name, e.g. "Numerically stable softmax"
    answer:     the name the learner's answer cell defines (a function or a variable)
    checker:    checker(answer) -> None, raising Incorrect / NotAttempted (use ``call`` to run functions)
    hints:      one or more hints, gentlest first
    solution:   the reference answer cell, as Python source; it defines ``answer`` (kept as ``solution_code``)
    success:    what a correct answer hears
    """

    def __init__(self, key: str, title: str, answer: str, checker: Callable[[Any], None], hints: Sequence[str],
                 solution: str, success: str = "well done."):
        self.key, self.title, self.answer, self.checker = key, title, answer, checker
        self.hints = list(hints)
        self.solution_code = solution
        self.success = success
        self._hint_shown = 0

    @property
    def label(self) -> str:
        return f"{self.key}. {self.title}"

    def evaluate(self, answer: Any) -> Feedback:
        """Check an answer and return the feedback (without showing it)."""
        if is_blank(answer):
            return Feedback(self.label, "not attempted",
                            f"replace the ____ in the answer cell that defines `{self.answer}`, run it, then run "
                            "this cell again. Stuck? Try .hint(); .solution() shows one answer.")
        try:
            self.checker(answer)
        except NotAttempted:
            return Feedback(self.label, "not attempted",
                            f"`{self.answer}` still holds a ____ blank (or raises NotImplementedError). "
                            "Fill it in and run the answer cell, then this cell again.")
        except (Incorrect, LearnerCodeError) as err:
            return Feedback(self.label, "incorrect", str(err))
        return Feedback(self.label, "correct", self.success)

    def check(self, answer: Any) -> None:
        """Check an answer and show the feedback. Never raises, except in strict mode (answer key tests)."""
        feedback = self.evaluate(answer)
        show(feedback)
        if strict_mode() and not feedback.passed:
            raise CheckFailed(str(feedback))

    def hint(self, n: int | None = None) -> None:
        """Show the next hint (or hint number ``n``, starting at 1)."""
        if not self.hints:
            show(_Panel("hint", self.label, "no hint for this one: try .solution()."))
            return
        if n is None:
            n = min(self._hint_shown + 1, len(self.hints))
            self._hint_shown = n
        if not 1 <= n <= len(self.hints):
            raise ValueError(f"{self.key} has hints 1..{len(self.hints)}, not {n}")
        more = f"  (hint {n} of {len(self.hints)})" if len(self.hints) > 1 else ""
        show(_Panel("hint", self.label, textwrap.dedent(self.hints[n - 1]).strip() + more))

    def solution(self) -> None:
        """Show one correct answer cell."""
        show(_Panel("solution", self.label, self.solution_source(), code=True))

    def solution_source(self) -> str:
        return textwrap.dedent(self.solution_code).strip("\n")

    def reference(self, namespace: dict[str, Any] | None = None) -> Any:
        """Run the solution source and return what it defines as ``answer`` (tests use this)."""
        ns = default_namespace()
        ns.update(namespace or {})
        exec(compile(self.solution_source(), f"<solution {self.key}>", "exec"), ns)
        if self.answer not in ns:
            raise RuntimeError(f"the solution of {self.key} does not define {self.answer!r}")
        return ns[self.answer]

    def __repr__(self) -> str:
        return f"<exercise {self.label}: fill in `{self.answer}`, then .check({self.answer}); .hint(), .solution()>"


def default_namespace() -> dict[str, Any]:
    """What a notebook cell usually has imported; reference solutions may use these names."""
    import torch.nn as nn
    import torch.nn.functional as F

    return {"torch": torch, "np": np, "math": math, "nn": nn, "F": F, "____": BLANK}


class ExerciseSet:
    """The exercises of one notebook: ``ex.q1``, ``ex.q2``, ... Printing it lists them."""

    def __init__(self, notebook: str, title: str, questions: Sequence[Question]):
        self.notebook = notebook
        self.title = title
        self.questions = list(questions)
        for i, q in enumerate(self.questions, start=1):
            if q.key != f"q{i}":
                raise ValueError(f"questions must be keyed q1, q2, ... in order; found {q.key!r} at {i}")
            setattr(self, q.key, q)

    def __iter__(self):
        return iter(self.questions)

    def __len__(self) -> int:
        return len(self.questions)

    def __repr__(self) -> str:
        lines = [f"Exercises for notebook {self.notebook} ({self.title}):"]
        lines += [f"  ex.{q.key}: {q.title}  (answer: `{q.answer}`)" for q in self.questions]
        lines.append("Each has .check(answer), .hint() and .solution().")
        return "\n".join(lines)
