import pytest
import torch

from course_utils.exercises import ____, available, load
from course_utils.exercises.core import (
    CheckFailed,
    ExerciseSet,
    Feedback,
    Incorrect,
    Question,
    call,
    expect_close,
    expect_number,
    expect_shape,
)


def _square_checker(fn):
    for x in (0.0, 1.5, -2.0):
        got = call(fn, x)
        expect_number(got, x * x, what=f"square({x})")


def _question() -> Question:
    return Question(key="q1", title="Square", answer="square", checker=_square_checker,
                    hints=["multiply x by itself", "x * x"], solution="def square(x):\n    return x * x\n")


def test_correct_wrong_blank_and_crash():
    q = _question()
    assert q.evaluate(q.reference()).passed
    wrong = q.evaluate(lambda x: 2 * x)
    assert wrong.status == "incorrect" and "square(1.5) should be 2.25, got 3" in wrong.message
    assert q.evaluate(____).status == "not attempted"
    assert q.evaluate(lambda x: ____).status == "not attempted"

    def unfinished(x):
        raise NotImplementedError

    assert q.evaluate(unfinished).status == "not attempted"
    crash = q.evaluate(lambda x: 1 / 0)
    assert crash.status == "incorrect" and "ZeroDivisionError" in crash.message
    assert q.evaluate(42).status == "incorrect" and "expected a function" in q.evaluate(42).message


def test_check_never_raises_unless_strict(monkeypatch, capsys):
    q = _question()
    monkeypatch.delenv("COURSE_CHECKS_STRICT", raising=False)
    q.check(____)
    assert "Not attempted yet" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_CHECKS_STRICT", "1")
    with pytest.raises(CheckFailed, match="Not attempted"):
        q.check(____)
    with pytest.raises(CheckFailed, match="Incorrect"):
        q.check(lambda x: x)
    q.check(q.reference())      # a correct answer passes in strict mode too
    assert "Correct" in capsys.readouterr().out


def test_feedback_renders_as_html_and_text():
    fb = Feedback("q1. Square", "incorrect", "rows do not sum to 1 <here>")
    assert "#b3261e" in fb._repr_html_() and "&lt;here&gt;" in fb._repr_html_()
    assert str(fb) == "[q1. Square] Incorrect: rows do not sum to 1 <here>"


def test_hints_advance_and_solution_shows_code(capsys):
    q = _question()
    q.hint()
    q.hint()
    q.hint()
    out = capsys.readouterr().out
    assert "multiply x by itself  (hint 1 of 2)" in out and out.count("x * x  (hint 2 of 2)") == 2
    q.solution()
    assert "return x * x" in capsys.readouterr().out
    with pytest.raises(ValueError):
        q.hint(5)


def test_expect_helpers_explain():
    with pytest.raises(Incorrect, match=r"expected \(B=2, T=3, T=3\), got \(2, 3, 4\)"):
        expect_shape(torch.zeros(2, 3, 4), (2, 3, 3), "B T T")
    with pytest.raises(Incorrect, match=r"at index \(1,\): expected 2, got 5"):
        expect_close(torch.tensor([1.0, 5.0]), torch.tensor([1.0, 2.0]), what="the weights")
    with pytest.raises(Incorrect, match="NaN"):
        expect_close(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(Incorrect, match="single number"):
        expect_number(torch.ones(3), 1.0)
    expect_close([1.0, 2.0], torch.tensor([1.0, 2.0]))


def test_exercise_sets_are_keyed_in_order():
    with pytest.raises(ValueError, match="q1, q2"):
        ExerciseSet("99", "bad", [Question("q2", "t", "a", _square_checker, [], "a = 1")])


def test_every_notebook_exercise_set_loads_and_its_references_pass():
    assert "00" in available()
    for number in available():
        ex = load(number)
        assert len(ex) >= 2
        for q in ex:
            assert q.hints, f"{number} {q.key} has no hint"
            assert q.evaluate(____).status == "not attempted", f"{number} {q.key}: blank not detected"
    with pytest.raises(KeyError, match="Available"):
        load("77")


ALL_QUESTIONS = [(number, q) for number in available() for q in load(number)]


@pytest.mark.parametrize("number,q", ALL_QUESTIONS, ids=[f"nb{n}-{q.key}" for n, q in ALL_QUESTIONS])
def test_every_reference_solution_passes_its_check(number, q):
    feedback = q.evaluate(q.reference())
    assert feedback.status == "correct", feedback


@pytest.mark.parametrize("number,q", ALL_QUESTIONS, ids=[f"nb{n}-{q.key}" for n, q in ALL_QUESTIONS])
def test_every_blank_answer_is_not_attempted(number, q):
    assert q.evaluate(____).status == "not attempted"

    def returns_blank(*args, **kwargs):
        return ____

    assert q.evaluate(returns_blank).status == "not attempted"


def test_expect_shape_explains_a_known_wrong_shape():
    known = {(2, 3, 8): "that is the shape of q; return the weights"}
    with pytest.raises(Incorrect, match=r"got \(2, 3, 8\) - that is the shape of q; return the weights$"):
        expect_shape(torch.zeros(2, 3, 8), (2, 3, 3), "B T T", known=known)
    with pytest.raises(Incorrect, match=r"got \(2, 3, 4\)$"):          # an unknown wrong shape: no explanation
        expect_shape(torch.zeros(2, 3, 4), (2, 3, 3), "B T T", known=known)
    assert expect_shape(torch.zeros(2, 3, 3), (2, 3, 3), known=known).shape == (2, 3, 3)
