"""Build the instructors' answer key: every exercise's answer cell filled with its reference solution.

    python -m course_utils.answer_key [--notebooks notebooks] [--out build/solutions] [--execute]

An answer cell is a code cell with the metadata ``"course_exercise": "qN"``. In the key its source becomes::

    ### BEGIN SOLUTION
    <the reference solution>
    ### END SOLUTION

and the cell gets nbgrader's metadata, so the key can also be handed to nbgrader. ``--execute`` runs each key in
a fresh kernel with ``COURSE_CHECKS_STRICT=1``: a check that does not pass stops the run with an error.

``exercise_slice(key)`` keeps only what the exercises need: the exercise section (first answer cell to last check
cell) and, before it, each cell that last binds a name the kept cells read (the last before the reading cell and
the last before the exercises, followed back cell by cell). The
tests run that slice, so a key's checks are proven to pass without training every notebook's models a second
time (CI already runs every learner notebook top to bottom).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from pathlib import Path

import nbformat

from .exercises import available, load
from .notebook_meta import is_check_cell

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


def _parse(source: str) -> ast.Module:
    """A cell's code without IPython's magics and shell escapes (lines starting with % or !)."""
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))


def _binds(source: str) -> set[str]:
    """Every name a cell binds anywhere at its top level: assignments, loops, imports, defs and classes."""
    return _bound_by(_parse(source).body)


def _bound_by(statements) -> set[str]:
    names: set[str] = set()
    for node in statements:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            continue
        for n in ast.walk(node):
            if isinstance(n, ast.Import | ast.ImportFrom):
                names |= {a.asname or a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)
    return names


def _stored(nodes) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _reads(source: str) -> set[str]:
    """The names a cell reads from the notebook's namespace: not a function's parameters or locals, not a
    comprehension's variables, not what the cell itself bound earlier on."""
    found: set[str] = set()

    def visit(node, bound: set[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
            for d in getattr(node, "decorator_list", []) + node.args.defaults + node.args.kw_defaults:
                if d is not None:
                    visit(d, bound)
            body = node.body if isinstance(node.body, list) else [node.body]
            inner = bound | args | _stored(body) | {n.name for b in body for n in ast.walk(b)
                                                    if isinstance(n, ast.FunctionDef | ast.ClassDef)}
            for b in body:
                visit(b, inner)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = bound | _stored(g.target for g in node.generators)
            for child in ast.iter_child_nodes(node):
                visit(child, inner)
        elif isinstance(node, ast.For | ast.AsyncFor):
            visit(node.iter, bound)
            for b in node.body + node.orelse:
                visit(b, bound | _stored([node.target]))
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and node.id not in bound:
                found.add(node.id)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, bound)

    bound: set[str] = set()
    for statement in _parse(source).body:      # top level: a name bound by an earlier statement is the cell's own
        visit(statement, bound)
        bound |= _bound_by([statement])
    return found


def exercise_slice(nb):
    """A copy of ``nb`` with only the cells its exercises need (see the module's docstring); metadata kept."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    answers = [i for i in code if EXERCISE_KEY in nb.cells[i].get("metadata", {})]
    checks = [i for i in code if is_check_cell(nb.cells[i].source)]
    if not answers or not checks:
        raise ValueError("the notebook has no exercises (answer cells and `ex.qN.check()` cells) to slice")
    first, last = answers[0], checks[-1]
    keep = {i for i in code if first <= i <= last}
    binds = {i: _binds(nb.cells[i].source) for i in code if i < first}
    todo = sorted(keep)
    while todo:
        j = todo.pop()
        for name in _reads(nb.cells[j].source):
            earlier = [i for i in binds if name in binds[i]]
            # the binding cell j sees when it runs, and (for a function that reads the name when called) the last
            # one before the exercises
            for i in {max((i for i in earlier if i < j), default=None), max(earlier, default=None)} - {None}:
                if i not in keep:
                    keep.add(i)
                    todo.append(i)
    sliced = nbformat.from_dict(nb)
    sliced.cells = [c for i, c in enumerate(sliced.cells)
                    if i in keep or (c.cell_type == "markdown" and first <= i <= last)]
    return sliced


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


def execute(path: Path, timeout: int = 900, quick: bool = True, only_exercises: bool = False) -> None:
    """Run one key top to bottom in a fresh kernel, in strict mode (a failing check raises), and store outputs.
    ``only_exercises=True`` runs and stores :func:`exercise_slice` of it instead of the whole notebook."""
    from nbclient import NotebookClient

    env = {**os.environ, "COURSE_CHECKS_STRICT": "1"}
    env.setdefault("COURSE_QUICK", "1" if quick else "0")
    nb = nbformat.read(path, as_version=4)
    if only_exercises:
        nb = exercise_slice(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute(env=env)   # the variables go to this kernel only, not to the calling process
    nbformat.write(nb, path)


def execute_slices(paths: list[Path], timeout: int = 900) -> dict[str, list]:
    """Run the :func:`exercise_slice` of several keys one after the other in ONE kernel, quick and strict mode,
    each after ``%reset -f`` (its names start empty: nothing one key defines is seen by the next; imported modules
    stay loaded, which saves a kernel start and the imports per notebook). A cell that raises does not stop the
    others. Returns {key file name: its executed cells, outputs included}."""
    from nbclient import NotebookClient

    env = {**os.environ, "COURSE_CHECKS_STRICT": "1", "COURSE_QUICK": "1"}
    combined = nbformat.v4.new_notebook()
    for path in paths:
        fresh = nbformat.v4.new_code_cell('%reset -f\nimport matplotlib.pyplot\nmatplotlib.pyplot.close("all")')
        fresh.metadata.update(key=path.name, fresh=True)
        combined.cells.append(fresh)
        for cell in exercise_slice(nbformat.read(path, as_version=4)).cells:
            cell.metadata["key"] = path.name
            combined.cells.append(cell)
    client = NotebookClient(combined, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute(env=env)
    return {p.name: [c for c in combined.cells if c.metadata["key"] == p.name and not c.metadata.get("fresh")]
            for p in paths}


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
