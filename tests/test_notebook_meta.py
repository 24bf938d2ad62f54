"""Stored notebook metadata (one kernelspec everywhere) and answer cells that never shadow the notebook's code."""

from pathlib import Path

import nbformat
import pytest

from course_utils import notebook_meta

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_stores_the_course_kernelspec(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec") == notebook_meta.KERNELSPEC, "run `make execute` (it stores the kernelspec)"


def test_stamp_writes_the_kernelspec_once(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    assert notebook_meta.stamp_kernelspec(path) is True
    assert nbformat.read(path, as_version=4).metadata["kernelspec"] == notebook_meta.KERNELSPEC
    assert notebook_meta.stamp_kernelspec(path) is False


def test_the_makefile_stores_the_kernelspec_when_it_executes():
    make = (REPO / "Makefile").read_text()
    execute = make.split("\nexecute:")[1].split("\n\n")[0]
    assert "course_utils.notebook_meta" in execute


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_answer_cell_shadows_a_name_the_notebook_uses(path):
    assert notebook_meta.shadowed_names(nbformat.read(path, as_version=4)) == {}


def test_shadowing_is_found():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def softmax(x):\n    return x"),
                                         nbformat.v4.new_code_cell("y = softmax(1)"),
                                         nbformat.v4.new_code_cell("def softmax(x):\n    return ____"),
                                         nbformat.v4.new_code_cell("ex.q1.check(softmax)")])
    nb.cells[2].metadata["course_exercise"] = "q1"
    assert notebook_meta.shadowed_names(nb) == {"softmax": [0, 1]}
