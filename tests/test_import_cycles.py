"""course_utils stacks one way: no module imports, directly or through others, a module that imports it back.

Every ``import`` / ``from ... import`` counts, wherever it stands (inside a function too), relative or absolute.
The checker is proven able to fail on a small package with a cycle built in a temporary folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name of every module of the package at ``root`` -> its file (``pkg/__init__.py`` is ``pkg``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute dotted name a ``from ... import`` points at, from inside ``module``."""
    if node.level == 0:
        return node.module or ""
    here = module.split(".") if is_package else module.split(".")[:-1]
    base = here[:len(here) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its file (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            # `from . import x` or `from .pkg import x` may name a submodule x, or a name inside base
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:        # `import a.b.c` -> the deepest module of the package
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    names = module_names(root)
    known = set(names)
    return {m: imports_of(m, p, known) for m, p in names.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list [a, b, ..., a], or None. Depth-first search with colours."""
    state: dict[str, str] = {}      # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = "open"
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return path[path.index(n):] + [n]
            if n not in state:
                cycle = visit(n)
                if cycle:
                    return cycle
        path.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return None


def test_course_utils_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert "course_utils.model" in graph and "course_utils.layers" in graph["course_utils.model"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_model_and_training_modules_stack_as_documented():
    graph = import_graph(PACKAGE)
    order = ["course_utils.layers", "course_utils.model", "course_utils.modern", "course_utils.settings",
             "course_utils.recipe", "course_utils.train", "course_utils.ablation"]
    for i, m in enumerate(order):
        above = set(order[i + 1:])
        assert not graph[m] & above, f"{m} imports {graph[m] & above}, which stand above it"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("files, expected", [
    ({"__init__.py": "", "a.py": "from .b import x\n", "b.py": "def f():\n    from . import a\n"},
     {"pkg.a", "pkg.b"}),
    ({"__init__.py": "", "a.py": "import pkg.b\n", "b.py": "from pkg.sub.c import y\n",
      "sub/__init__.py": "", "sub/c.py": "class C:\n    def m(self):\n        from ..a import z\n"},
     {"pkg.a", "pkg.b", "pkg.sub.c"}),
])
def test_the_checker_finds_a_cycle_in_a_small_package(tmp_path, files, expected):
    cycle = find_cycle(import_graph(_package(tmp_path, files)))
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == expected


def test_the_checker_passes_a_package_without_a_cycle(tmp_path):
    files = {"__init__.py": "", "a.py": "from .b import x\nimport os\n", "b.py": "def f():\n    from .c import y\n",
             "c.py": "import json\n"}
    graph = import_graph(_package(tmp_path, files))
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert find_cycle(graph) is None
