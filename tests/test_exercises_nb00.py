import torch

from course_utils.exercises import ____, load

ex = load("00")


def test_q1_word_counts():
    assert ex.q1.evaluate(ex.q1.reference()).passed
    no_lower = ex.q1.evaluate(lambda t: {w: t.split().count(w) for w in t.split()})
    assert no_lower.status == "incorrect" and "capital letters" in no_lower.message
    keeps_punctuation = ex.q1.evaluate(lambda t: {w: t.lower().split().count(w) for w in t.lower().split()})
    assert keeps_punctuation.status == "incorrect" and "punctuation" in keeps_punctuation.message
    as_list = ex.q1.evaluate(lambda t: t.lower().split())
    assert as_list.status == "incorrect" and "should return a dict" in as_list.message
    assert ex.q1.evaluate(lambda t: ____).status == "not attempted"


def test_q2_make_grid():
    assert ex.q2.evaluate(ex.q2.reference()).passed
    swapped = ex.q2.evaluate(lambda n, m: torch.arange(n * m).reshape(m, n))
    assert swapped.status == "incorrect" and "rows and columns are swapped" in swapped.message
    by_column = ex.q2.evaluate(lambda n, m: torch.arange(n * m).reshape(m, n).T)
    assert by_column.status == "incorrect" and "run down the columns" in by_column.message
    off_by_one = ex.q2.evaluate(lambda n, m: torch.arange(1, n * m + 1).reshape(n, m))
    assert off_by_one.status == "incorrect" and "first row should be [0, 1, 2, 3]" in off_by_one.message
