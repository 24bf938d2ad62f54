import torch

from course_utils.exercises import ____, load

ex = load("02")


def test_q1_cosine():
    assert ex.q1.evaluate(ex.q1.reference()).passed
    dot = ex.q1.evaluate(lambda a, b: (a @ b).item())
    assert dot.status == "incorrect" and "plain dot product" in dot.message
    one_norm = ex.q1.evaluate(lambda a, b: (a @ b / a.norm()).item())
    assert one_norm.status == "incorrect" and "length of a only" in one_norm.message
    squared = ex.q1.evaluate(lambda a, b: (a @ b / ((a @ a) * (b @ b))).item())
    assert squared.status == "incorrect" and "squared lengths" in squared.message
    distance = ex.q1.evaluate(lambda a, b: 1 - (a @ b / (a.norm() * b.norm())).item())
    assert distance.status == "incorrect" and "distance" in distance.message
    assert ex.q1.evaluate(lambda a, b: ____).status == "not attempted"


def test_q2_top_k_neighbours():
    assert ex.q2.evaluate(ex.q2.reference()).passed
    raw = ex.q2.evaluate(lambda E, v, k: torch.topk(E @ v, k).indices)
    assert raw.status == "incorrect" and "raw dot product" in raw.message
    smallest = ex.q2.evaluate(lambda E, v, k: torch.topk((E / E.norm(dim=1, keepdim=True)) @ v, k,
                                                         largest=False).indices)
    assert smallest.status == "incorrect" and "least similar" in smallest.message
    values = ex.q2.evaluate(lambda E, v, k: torch.topk((E / E.norm(dim=1, keepdim=True)) @ (v / v.norm()), k).values)
    assert values.status == "incorrect" and "returned the similarities" in values.message
    assert ex.q2.evaluate(lambda E, v, k: ____).status == "not attempted"


def _analogy(exclude=True, sign=1, normalise=True):
    def solve(E, itos, a, b, c):
        ia, ib, ic = itos.index(a), itos.index(b), itos.index(c)
        En = E / E.norm(dim=1, keepdim=True) if normalise else E
        scores = En @ (sign * (E[ib] - E[ia]) + E[ic])
        if exclude:
            scores[[ia, ib, ic]] = -float("inf")
        return itos[int(scores.argmax())]
    return solve


def test_q3_solve_analogy():
    assert ex.q3.evaluate(ex.q3.reference()).passed
    assert ex.q3.evaluate(_analogy()).passed  # combining raw vectors is also accepted
    keeps_queries = ex.q3.evaluate(_analogy(exclude=False))
    assert keeps_queries.status == "incorrect" and "one of the query words" in keeps_queries.message
    swapped = ex.q3.evaluate(_analogy(sign=-1))
    assert swapped.status == "incorrect" and "signs are swapped" in swapped.message
    raw = ex.q3.evaluate(_analogy(normalise=False))
    assert raw.status == "incorrect" and "raw dot product" in raw.message
    index = ex.q3.evaluate(lambda E, itos, a, b, c: 0)
    assert index.status == "incorrect" and "a str" in index.message
    assert ex.q3.evaluate(lambda E, itos, a, b, c: ____).status == "not attempted"
