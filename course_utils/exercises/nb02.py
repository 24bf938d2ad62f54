"""Exercises for notebook 02 (word embeddings): cosine similarity, neighbours by one matrix product, analogies."""

from __future__ import annotations

import functools
import math

import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call

ANALOGY_CASES = [("man", "king", "woman"), ("france", "paris", "germany"), ("big", "bigger", "small"),
                 ("walk", "walking", "swim"), ("japan", "tokyo", "italy")]


@functools.lru_cache(maxsize=1)
def glove_matrix(n_words: int = 20_000) -> tuple[torch.Tensor, list[str]]:
    """The GloVe vectors of the ``n_words`` most frequent words as a (n_words, 50) tensor, and the words."""
    from ..embeddings import load_glove

    kv = load_glove()
    return torch.tensor(kv.vectors[:n_words]), list(kv.index_to_key[:n_words])


def _to_float(value, what: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    t = as_tensor(value, what)
    if t.numel() != 1:
        raise Incorrect(f"{what} should be a single number, got a tensor of shape {tuple(t.shape)}")
    return float(t.item())


# ---- q1: cosine similarity ------------------------------------------------------------------------------------

def _check_cosine(cosine) -> None:
    g = torch.Generator().manual_seed(0)
    cases = [(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])), (torch.tensor([3.0, 4.0]), torch.tensor([6.0, 8.0])),
             (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-1.0, 0.5, 2.0]))]
    cases += [(torch.randn(50, generator=g) * 3, torch.randn(50, generator=g)) for _ in range(3)]
    for a, b in cases:
        value = _to_float(call(cosine, a.clone(), b.clone()), "cosine(a, b)")
        a64, b64 = a.double(), b.double()
        dot, na, nb = float(a64 @ b64), float(a64.norm()), float(b64.norm())
        want = dot / (na * nb)
        if math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-6):
            continue
        suspects = [(dot, "that is the plain dot product: divide it by both lengths, |a| |b|."),
                    (dot / na, "you divided by the length of a only: divide by |a| |b|."),
                    (dot / nb, "you divided by the length of b only: divide by |a| |b|."),
                    (dot / (na * nb) ** 2, "you divided by the squared lengths: |a| is the square root of a . a."),
                    (dot / (na**2 * nb**2), "you divided by the squared lengths: |a| is the square root of a . a."),
                    (1 - want, "that is the cosine *distance* 1 - cos; the similarity is a . b / (|a| |b|).")]
        for wrong, message in suspects:
            if math.isclose(value, wrong, rel_tol=1e-4, abs_tol=1e-6):
                raise Incorrect(message)
        raise Incorrect(f"for a = {a.tolist()[:3]}..., b = {b.tolist()[:3]}... the cosine should be {want:.4f}, "
                        f"got {value:.4f}")
    if abs(_to_float(call(cosine, torch.tensor([2.0, 0.0]), torch.tensor([-5.0, 0.0])), "cosine(a, b)") + 1) > 1e-5:
        raise Incorrect("opposite vectors should have cosine -1")


# ---- q2: nearest neighbours by one matrix product -------------------------------------------------------------

def _check_top_k(top_k_neighbours) -> None:
    g = torch.Generator().manual_seed(1)
    for V, d, k in [(30, 5, 3), (200, 16, 5), (1000, 50, 10)]:
        E = torch.randn(V, d, generator=g) * torch.rand(V, 1, generator=g).mul(4).add(0.2)  # rows of many lengths
        v = torch.randn(d, generator=g)
        got = as_tensor(call(top_k_neighbours, E.clone(), v.clone(), k))
        cos = (E / E.norm(dim=1, keepdim=True)) @ (v / v.norm())
        want = torch.topk(cos, k).indices
        if got.shape != (k,):
            raise Incorrect(f"wrong shape: expected ({k},) (the indices of the k = {k} best rows), got "
                            f"{tuple(got.shape)}")
        if torch.is_floating_point(got):
            if torch.allclose(got.double(), cos[want].double(), atol=1e-4):
                raise Incorrect("you returned the similarities; return the row indices (topk(...).indices).")
            raise Incorrect("return the row indices as integers (a LongTensor), not floats.")
        got = got.long()
        if torch.equal(got, want):
            continue
        if set(got.tolist()) == set(want.tolist()):
            raise Incorrect("the right rows, but not most similar first: sort by decreasing similarity.")
        if torch.equal(got, torch.topk(cos, k, largest=False).indices):
            raise Incorrect("you returned the least similar rows: take the largest cosines (largest=True).")
        if torch.equal(got, torch.topk(E @ v, k).indices):
            raise Incorrect("you ranked by the raw dot product E @ v, which favours long vectors: divide each row "
                            "of E by its length first (E / E.norm(dim=1, keepdim=True)).")
        raise Incorrect(f"for a vocabulary of {V} vectors the best rows are {want.tolist()}, got {got.tolist()}")


# ---- q3: an analogy that excludes the query words -------------------------------------------------------------

def _answers(E: torch.Tensor, itos: list[str], a: str, b: str, c: str) -> dict[str, set[str] | str]:
    """What the right method and each likely mistake return for one analogy."""
    ia, ib, ic = (itos.index(w) for w in (a, b, c))
    En = E / E.norm(dim=1, keepdim=True)

    def best(scores, exclude=True):
        scores = scores.clone()
        if exclude:
            scores[[ia, ib, ic]] = -float("inf")
        return itos[int(scores.argmax())]

    return {"right": {best(En @ (En[ib] - En[ia] + En[ic])), best(En @ (E[ib] - E[ia] + E[ic]))},
            "no_exclusion": best(En @ (E[ib] - E[ia] + E[ic]), exclude=False),
            "sign": best(En @ (E[ia] - E[ib] + E[ic])),
            "dot": best(E @ (E[ib] - E[ia] + E[ic]))}


def _check_analogy(solve_analogy) -> None:
    E, itos = glove_matrix()
    for a, b, c in ANALOGY_CASES:
        got = call(solve_analogy, E, itos, a, b, c)
        if not isinstance(got, str):
            raise Incorrect(f"solve_analogy should return a word (a str), got {type(got).__name__}: {got!r:.60}")
        answers = _answers(E, itos, a, b, c)
        if got in answers["right"]:
            continue
        if got in (a, b, c):
            raise Incorrect(f"for {a} : {b} :: {c} : ? you answered {got!r}, one of the query words. The vector "
                            f"{b} - {a} + {c} lies close to {b} and {c} themselves: exclude a, b and c (set their "
                            "scores to -inf before the argmax).")
        if got == answers["sign"] and got != answers["dot"]:
            raise Incorrect(f"for {a} : {b} :: {c} : ? you answered {got!r}: the signs are swapped. The answer "
                            f"vector is {b} - {a} + {c}.")
        if got == answers["dot"]:
            raise Incorrect(f"for {a} : {b} :: {c} : ? you answered {got!r}: rank the words by cosine similarity "
                            "(normalise the rows of E), not by the raw dot product.")
        raise Incorrect(f"for {a} : {b} :: {c} : ? the answer should be {sorted(answers['right'])[0]!r}, "
                        f"got {got!r}")


EXERCISES = ExerciseSet("02", "Word embeddings", [
    Question(
        key="q1", title="Cosine similarity", answer="cosine", checker=_check_cosine,
        hints=["cos(a, b) = a . b / (|a| |b|): the dot product divided by both lengths.",
               "`a @ b` is the dot product and `a.norm()` the length; `.item()` gives a Python number."],
        solution='''
def cosine(a, b):
    return (a @ b / (a.norm() * b.norm())).item()
''',
        success="1 means the same direction, 0 unrelated (orthogonal), -1 opposite."),
    Question(
        key="q2", title="Nearest neighbours by one matrix product", answer="top_k_neighbours",
        checker=_check_top_k,
        hints=["Divide each row of E by its length; then one product `E_unit @ v` gives a score for every word.",
               "`torch.topk(scores, k).indices` returns the k best rows, best first."],
        solution='''
def top_k_neighbours(E, v, k):
    E_unit = E / E.norm(dim=1, keepdim=True)
    scores = E_unit @ (v / v.norm())
    return torch.topk(scores, k).indices
''',
        success="one (V, d) x (d,) product scores the whole vocabulary at once."),
    Question(
        key="q3", title="An analogy that excludes the query words", answer="solve_analogy",
        checker=_check_analogy,
        hints=["Build the vector E[b] - E[a] + E[c], score every word by cosine with it, and take the best.",
               "Before the argmax, set the scores of a, b and c to -inf, otherwise the answer is usually b or c.",
               "`ia = itos.index(a)` gives a word's row."],
        solution='''
def solve_analogy(E, itos, a, b, c):
    ia, ib, ic = itos.index(a), itos.index(b), itos.index(c)
    E_unit = E / E.norm(dim=1, keepdim=True)
    target = E_unit[ib] - E_unit[ia] + E_unit[ic]
    scores = E_unit @ target
    scores[[ia, ib, ic]] = -float("inf")
    return itos[int(scores.argmax())]
''',
        success="this is exactly how the benchmark in this notebook asks its 19,544 questions."),
])
