"""Self-checking exercises for every notebook. In a notebook::

    from course_utils.exercises import ____, load
    ex = load("03")
    ex.q1.check(my_softmax); ex.q1.hint(); ex.q1.solution()

Each notebook's questions live in ``course_utils/exercises/nbNN.py`` as ``EXERCISES`` (an ``ExerciseSet``).
"""

from __future__ import annotations

import importlib
import pkgutil

from .core import BLANK, CheckFailed, ExerciseSet, Feedback, Incorrect, Question, ____, call  # noqa: F401


def available() -> list[str]:
    """Notebook numbers that have exercises, e.g. ['00', '01', ...]."""
    return sorted(m.name[2:] for m in pkgutil.iter_modules(__path__) if m.name.startswith("nb"))


def load(notebook: str | int) -> ExerciseSet:
    """The exercise set of a notebook: ``load("03")`` or ``load(3)``."""
    key = f"{int(notebook):02d}" if str(notebook).isdigit() else str(notebook)
    if key not in available():
        raise KeyError(f"No exercises for notebook {notebook!r}. Available: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.nb{key}").EXERCISES
