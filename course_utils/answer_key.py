"""Build the instructors' answer key: every exercise's answer cell filled with its reference solution.

    python -m course_utils.answer_key [--notebooks notebooks] [--out build/solutions] [--execute]

An answer cell is a code cell with the metadata ``"course_exercise": "qN"``. In the key its source becomes::

    ### BEGIN SOLUTION
    <the reference solution>
    ### END SOLUTION

and the cell gets nbgrader's metadata, so the key can also be handed to nbgrader. ``--execute`` runs each key in
a fresh kernel with ``COURSE_CHECKS_STRICT=1``: a check that does not pass stops the run with an error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat

from .exercises import available, load

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_KEY = "course_exercise"
REPO = Path(__file__).resolve().parent.parent


def notebook_number(path: Path) -> str | None:
    m = re.match(r"(\d\d)_", path.name)
    return m.group(1) if m else None


def answer_cells(nb) -> list:
    """The answer cells of a notebook, in order."""
    return [c for c in nb.cells if c.cell_type == "code" and EXERCISE_KEY in c.get("metadata", {})]


def fill_solutions(nb, number: str):
    """Return a copy of the notebook with every answer cell replaced by its solution, outputs cleared."""
    key = nbformat.from_dict(nb)
    exercises = load(number) if number in available() else None
    cells = answer_cells(key)
    if cells and exercises is None:
        raise ValueError(f"notebook {number} has answer cells but course_utils/exercises/nb{number}.py is missing")
    seen = set()
    for cell in cells:
        qkey = cell.metadata[EXERCISE_KEY]
        question = getattr(exercises, qkey, None)
        if question is None:
            raise ValueError(f"notebook {number}: answer cell for {qkey!r}, which nb{number}.py does not define")
        if qkey in seen:
            raise ValueError(f"notebook {number}: two answer cells for {qkey}")
        seen.add(qkey)
        cell.source = f"{BEGIN}\n{question.solution_source()}\n{END}"
        cell.metadata["nbgrader"] = {"grade": False, "grade_id": f"nb{number}_{qkey}", "locked": False,
                                     "schema_version": 3, "solution": True, "task": False}
    if exercises is not None:
        missing = [q.key for q in exercises if q.key not in seen]
        if missing:
            raise ValueError(f"notebook {number}: no answer cell for {', '.join(missing)}")
    for cell in key.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return key


def build(notebooks: Path = REPO / "notebooks", out: Path = REPO / "build" / "solutions") -> list[Path]:
    """Write the answer key of every numbered notebook into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        key = fill_solutions(nb, notebook_number(path))
        target = out / path.name
        nbformat.write(key, target)
        written.append(target)
    return written


def execute(path: Path, timeout: int = 900, quick: bool = True) -> None:
    """Run one key top to bottom in a fresh kernel, in strict mode (a failing check raises), and store outputs."""
    from nbclient import NotebookClient

    env = {**os.environ, "COURSE_CHECKS_STRICT": "1"}
    env.setdefault("COURSE_QUICK", "1" if quick else "0")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute(env=env)   # the variables go to this kernel only, not to the calling process
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "solutions")
    parser.add_argument("--execute", action="store_true", help="run every key in strict mode (checks must pass)")
    args = parser.parse_args(argv)
    for path in build(args.notebooks, args.out):
        if args.execute:
            print(f"executing {path.name} ...", flush=True)
            execute(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
