"""The learner's notebooks as stored: unsolved exercises, outputs from a full run, run in order, no secrets."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from course_utils import answer_key
from course_utils.exercises import available, load

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_setup_and_tour", "01_markov_bigram", "02_word_embeddings", "03_self_attention",
            "04_causal_masking", "05_multi_head_attention", "06_positional_encoding", "07_transformer_block",
            "08_mini_gpt", "09_generation", "10_tokenization", "11_math_by_the_numbers", "12_scaling_laws",
            "13_model_families", "14_fine_tuning_lora", "15_modern_recipe", "16_a_real_llm",
            "17_inside_a_real_llm", "18_assistant"]


def _code_lines(source: str) -> set[str]:
    return {line.strip() for line in source.splitlines()
            if len(line.strip()) > 12 and not line.strip().startswith(("#", "def ", "import ", "from "))}


def test_the_course_is_complete():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_learner_notebook_holds_no_solution(path):
    nb = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in nb.cells)
    assert answer_key.BEGIN not in source and answer_key.END not in source
    number = answer_key.notebook_number(path)
    if number not in available():
        return
    cells = {c.metadata["course_exercise"]: c for c in answer_key.answer_cells(nb)}
    for q in load(number):
        cell = cells[q.key]
        assert "____" in cell.source, f"{q.key}: the answer cell has no blank to fill in"
        leaked = _code_lines(q.solution_source()) & _code_lines(cell.source)
        assert not leaked, f"{q.key}: the answer cell contains solution lines {leaked}"
        # the solution is never shown in the stored outputs either
        outputs = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
        assert q.solution_source() not in outputs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_with_a_full_run_in_order(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert all(n is not None for n in counts), "some cells were never run: run `make execute`"
    assert counts == list(range(1, len(code) + 1)), "cells were not run top to bottom in one go"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "QUICK MODE" not in text, "stored outputs come from a quick run; store a full run (make execute)"
    assert "Full mode" in text, "the notebook should print runtime.mode_banner() near the top"
    assert not re.search(r"/(work|tmp|root|home|Users)/[\w.-]+/", json.dumps(nb.metadata) + text + "".join(
        c.source for c in nb.cells)), "an absolute machine path appears in the notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_unattempted_checks_say_so(path):
    nb = nbformat.read(path, as_version=4)
    number = answer_key.notebook_number(path)
    if number not in available():
        return
    text = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    for q in load(number):
        assert f"[{q.label}] Not attempted yet" in text, f"{q.key}: its check output should say 'not attempted'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "you will" in markdown and "$" in markdown, "open with what you will learn and the equation"
    assert "summary" in markdown and "exercise" in markdown
    assert "quick mode" in markdown, "say in words what quick mode changes"
