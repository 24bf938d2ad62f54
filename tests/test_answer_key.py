"""The answer key: built from the learner's notebooks, every check in it passes (executed in strict mode, on the
cells the exercises need), and no solution overwrites a name the notebook uses."""

from pathlib import Path

import nbformat
import pytest

from course_utils import answer_key, notebook_meta
from course_utils.exercises import available, load

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("solutions")
    return {p.name: p for p in answer_key.build(out=out)}


def test_every_notebook_with_exercises_gets_a_key(keys):
    assert sorted(keys) == [p.name for p in NOTEBOOKS]
    numbers = {answer_key.notebook_number(p) for p in NOTEBOOKS}
    assert set(available()) <= numbers, "an exercise module has no notebook"


def test_key_cells_hold_the_solutions_between_nbgrader_markers(keys):
    for name, path in keys.items():
        number = answer_key.notebook_number(path)
        cells = answer_key.answer_cells(nbformat.read(path, as_version=4))
        if number not in available():
            assert not cells
            continue
        ex = load(number)
        assert [c.metadata["course_exercise"] for c in cells] == [q.key for q in ex], name
        for cell, q in zip(cells, ex, strict=True):
            assert cell.source.startswith(answer_key.BEGIN + "\n") and cell.source.endswith("\n" + answer_key.END)
            assert q.solution_source() in cell.source
            assert cell.metadata["nbgrader"]["solution"] is True
            assert "____" not in cell.source


def test_no_solution_takes_a_name_the_notebook_uses(keys):
    # a learner who writes the reference solution must not overwrite a function or variable that another cell
    # of the notebook reads (checked on the solutions themselves, helpers and all, not only the answer's name)
    for name, path in keys.items():
        assert notebook_meta.shadowed_names(nbformat.read(path, as_version=4)) == {}, name


def test_missing_answer_cell_is_an_error():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="no answer cell for q1"):
        answer_key.fill_solutions(nb, "00")


def test_exercise_slice_keeps_what_the_exercises_read_and_drops_the_rest():
    new = nbformat.v4
    cells = [new.new_code_cell("import torch\nfrom course_utils.exercises import load"),   # 0: read by 2 (load)
             new.new_code_cell("model = train_for_ten_minutes()"),                         # 1: nobody reads model
             new.new_code_cell("n = 3\nn = 4"),                                             # 2: shadowed by 3 and 4
             new.new_code_cell("n = 0"),                                                    # 3: nobody sees it
             new.new_code_cell("n = 1"),                                                    # 4: read by 5's y
             new.new_code_cell("y = n\ndef helper(x):\n    return x * n * y"),            # 5: read by the check
             new.new_code_cell("n = 5"),                                                    # 6: the n helper sees
             new.new_markdown_cell("## Exercises"),
             new.new_code_cell("ex = load('00')"),                                          # 8
             new.new_code_cell("def f(x):\n    ____", metadata={"course_exercise": "q1"}),  # 9: answer cell
             new.new_markdown_cell("check it:"),
             new.new_code_cell("ex.q1.check(f, helper)"),                                  # 11: check cell
             new.new_code_cell("print(model)")]                                            # 12: after the checks
    sliced = answer_key.exercise_slice(new.new_notebook(cells=cells))
    kept = [c.source for c in sliced.cells]
    assert kept == [cells[i].source for i in (0, 4, 5, 6, 8, 9, 10, 11)]
    with pytest.raises(ValueError, match="no exercises"):
        answer_key.exercise_slice(new.new_notebook(cells=cells[:5]))


@pytest.fixture(scope="module")
def executed(keys):
    """Every key's exercise slice, run in strict and quick mode, one after the other in one kernel (each after
    ``%reset -f``: the whole notebooks already run under nbval, and one kernel saves a start per notebook)."""
    return answer_key.execute_slices([keys[p.name] for p in NOTEBOOKS])


def _errors(cells) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in cells for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_answer_key_runs_and_every_check_passes(executed, name):
    cells = executed[name]
    assert cells, f"{name}: no exercise cells ran"
    # strict mode: a check that does not pass raises, and shows here as an error output
    assert not _errors(cells), f"{name}: {_errors(cells)}"
    text = "\n".join(str(o) for c in cells if c.cell_type == "code" for o in c.get("outputs", []))
    for q in load(answer_key.notebook_number(Path(name))):
        assert f"{q.label} \u2014 Correct" in text or f"[{q.label}] Correct" in text, f"{name} {q.key}"
    assert "Not attempted yet" not in text and "Incorrect" not in text


def test_one_kernel_run_reports_a_failing_check_and_goes_on(tmp_path):
    """The shared kernel cannot hide a failure: a wrong answer in one key is an error output of that key, the
    key after it still runs, and it does not see the first key's names."""
    new = nbformat.v4
    def key(name, answer):
        cells = [new.new_code_cell("from course_utils.exercises import load\nex = load('00')\nsecret = 1"),
                 new.new_code_cell(answer, metadata={"course_exercise": "q1"}),
                 new.new_code_cell("ex.q1.check(f)")]
        path = tmp_path / name
        nbformat.write(new.new_notebook(cells=cells), path)
        return path
    wrong = key("00_wrong.ipynb", "leaked = True\ndef f(*args):\n    return None")
    other = key("00_other.ipynb",
                "print('sees the key before:', 'leaked' in globals())\ndef f(*args):\n    return None")
    out = answer_key.execute_slices([wrong, other])
    for name in ("00_wrong.ipynb", "00_other.ipynb"):     # strict mode: the wrong answer raises CheckFailed
        assert [e.split(":")[0] for e in _errors(out[name])] == ["CheckFailed"], _errors(out[name])
    answer = "".join(o.get("text", "") for o in out["00_other.ipynb"][1].get("outputs", []))
    assert "sees the key before: False" in answer
