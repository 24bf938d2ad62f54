"""The stored notebooks' metadata and the answer key's hygiene.

    python -m course_utils.notebook_meta notebooks/NN_*.ipynb     # write the course's kernelspec into each

``KERNELSPEC`` is stored in every notebook: without one, JupyterLab logs "No exact match found for python3" and
marks a notebook modified as soon as it opens. ``make execute`` writes it before each run.

``shadowed_names(nb)`` finds the names an answer cell defines that another cell of the notebook uses: a learner's
answer must never overwrite a function the notebook itself calls, or re-running an earlier cell after the
exercises would run the learner's (perhaps half-finished) function instead of the course's.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
EXERCISE_KEY = "course_exercise"


def stamp_kernelspec(path: Path) -> bool:
    """Store ``KERNELSPEC`` in the notebook at ``path``; returns True when the file changed."""
    nb = nbformat.read(path, as_version=4)
    if nb.metadata.get("kernelspec") == KERNELSPEC:
        return False
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.write(nb, path)
    return True


def defined_names(source: str) -> set[str]:
    """Top-level names a cell binds by ``def``, ``class`` or assignment (imports are not counted)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def used_names(source: str) -> set[str]:
    """Every plain name a cell reads or binds (``f`` in ``f(x)``, not ``m.f``)."""
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names | {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def is_check_cell(source: str) -> bool:
    return source.lstrip().startswith("ex.q")


def shadowed_names(nb) -> dict[str, list[int]]:
    """Names defined in answer cells that other cells (not the answer or check cells) use: name -> cell indices."""
    answers: set[str] = set()
    for c in nb.cells:
        if c.cell_type == "code" and EXERCISE_KEY in c.get("metadata", {}):
            answers |= defined_names(c.source)
    found: dict[str, list[int]] = {}
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or EXERCISE_KEY in c.get("metadata", {}) or is_check_cell(c.source):
            continue
        for name in sorted(used_names(c.source) & answers):
            found.setdefault(name, []).append(i)
    return found


def main(argv: list[str] | None = None) -> int:
    for arg in argv if argv is not None else sys.argv[1:]:
        if stamp_kernelspec(Path(arg)):
            print(f"kernelspec stored in {arg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
