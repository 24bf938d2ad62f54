"""Exercises for notebook 01 (Markov chains and the bigram model): normalise counts, perplexity, sampling, add-k."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, expect_close, expect_number

ATOL = 1e-6


def _count_cases():
    g = torch.Generator().manual_seed(1)
    yield torch.tensor([[0, 2, 0], [1, 0, 1], [3, 1, 0]])
    for V in (4, 6, 9):
        yield torch.randint(0, 5, (V, V), generator=g) + torch.eye(V, dtype=torch.long)  # every row has a count


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=ATOL))


# ---- q1: counts -> probabilities ----------------------------------------------------------------------------

def _check_normalise_rows(normalise_rows) -> None:
    for counts in _count_cases():
        got = as_tensor(call(normalise_rows, counts.clone()))
        c = counts.double()
        want = c / c.sum(1, keepdim=True)
        if _close(got, want):
            continue
        if got.shape == want.shape:
            if _close(got, c / c.sum(1)):
                raise Incorrect("each entry was divided by the wrong row's total: counts.sum(dim=1) has shape (V,), "
                                "and dividing a (V, V) matrix by it divides column j by the total of row j. "
                                "Keep the dimension: counts.sum(dim=1, keepdim=True) has shape (V, 1).")
            if _close(got, c / c.sum(0, keepdim=True)):
                raise Incorrect("the columns sum to 1, not the rows: you divided by column totals (dim=0). "
                                "Row i is P(next | previous = i), so divide by the row totals (dim=1).")
            if _close(got, c / c.sum()):
                raise Incorrect("you divided by the total of the whole matrix: then all entries together sum to 1. "
                                "Each row must sum to 1 on its own: divide by counts.sum(dim=1, keepdim=True).")
            if not torch.is_floating_point(got) or _close(got, torch.div(counts, counts.sum(1, keepdim=True),
                                                                           rounding_mode="floor")):
                raise Incorrect("your probabilities are whole numbers: integer division rounds them down. "
                                "Convert first with counts.float() (or .double()).")
        expect_close(got, want, what="the probabilities", atol=ATOL, names="prev next")


# ---- q2: perplexity -------------------------------------------------------------------------------------------

def _check_perplexity(perplexity) -> None:
    cases = [torch.tensor([0.15, 0.95]), torch.tensor([0.5, 0.25, 0.125, 0.9]), torch.tensor([0.01, 0.2, 0.6]),
             torch.full((5,), 0.1)]
    for p in cases:
        got = call(perplexity, p.clone())
        nll = -torch.log(p.double())
        want = math.exp(float(nll.mean()))
        try:
            value = float(as_tensor(got).item()) if not isinstance(got, int | float) else float(got)
        except (ValueError, RuntimeError):
            raise Incorrect(f"perplexity should return a single number, got {got!r:.60}") from None
        if math.isclose(value, want, rel_tol=1e-4):
            continue
        suspects = [
            (float(nll.mean()), "that is the cross-entropy (average -log p), not the perplexity: take exp of it."),
            (1 / want, "your value is 1 / perplexity: the cross-entropy is the average of -log p, with a minus sign."),
            (math.exp(float(nll.sum())), "you summed -log p over the tokens; perplexity uses the average "
                                          "(divide by the number of tokens) before exp."),
            (float((1 / p.double()).mean()), "you averaged 1/p; perplexity is exp of the average of -log p "
                                             "(a geometric mean of 1/p, not an arithmetic one)."),
            (math.exp(float(nll.mean()) / math.log(2)), "you mixed bases: -log p in bits goes with 2 ** (...), "
                                                        "natural log goes with exp(...)."),
        ]
        for wrong, message in suspects:
            if math.isclose(value, wrong, rel_tol=1e-4):
                raise Incorrect(message)
        expect_number(value, want, what=f"the perplexity of p = {p.tolist()}", rel=1e-4)


# ---- q3: sample the next token -----------------------------------------------------------------------------

def _check_sample_next(sample_next) -> None:
    probs = torch.tensor([0.1, 0.6, 0.0, 0.3])
    first = call(sample_next, probs.clone(), torch.Generator().manual_seed(5))
    if isinstance(first, torch.Tensor) and first.numel() == 1:
        first = first.item()
    if not isinstance(first, int):
        raise Incorrect(f"sample_next should return a Python int (use .item()), got {type(first).__name__}")
    flat = torch.full((10,), 0.1)
    draws = [int(call(sample_next, flat.clone(), torch.Generator().manual_seed(5))) for _ in range(8)]
    if len(set(draws)) > 1:
        raise Incorrect("two generators with the same seed gave different tokens: pass the generator on "
                        "(torch.multinomial(probs, 1, generator=generator)), so a seed makes a run repeatable.")
    g = torch.Generator().manual_seed(0)
    seen = torch.tensor([int(call(sample_next, probs.clone(), g)) for _ in range(3000)])
    if len(set(seen.tolist())) == 1:
        raise Incorrect(f"you always pick token {seen[0].item()}: that is the most likely token (argmax), a greedy "
                        "choice. Sampling draws token i with probability probs[i].")
    if (seen == 2).any():
        raise Incorrect("you drew token 2, whose probability is 0: sample in proportion to probs, not uniformly.")
    freq = torch.bincount(seen, minlength=4).double() / len(seen)
    if (freq - probs.double()).abs().max() > 0.04:
        raise Incorrect(f"over 3000 draws the tokens came up with frequencies {[round(f, 3) for f in freq.tolist()]}, "
                        f"but the probabilities are {probs.tolist()}: draw token i with probability probs[i].")


# ---- q4: add-k smoothing -------------------------------------------------------------------------------------

def _check_add_k(add_k) -> None:
    for counts in [torch.tensor([[0, 2, 0], [0, 0, 0], [3, 1, 0]]), *list(_count_cases())[1:]]:
        for k in (1.0, 0.5, 0.01):
            got = as_tensor(call(add_k, counts.clone(), k))
            c = counts.double()
            V = c.shape[1]
            want = (c + k) / (c.sum(1, keepdim=True) + k * V)
            if _close(got, want):
                continue
            if got.shape == want.shape:
                if _close(got, (c + k) / (c.sum(1, keepdim=True) + k)):
                    raise Incorrect("rows do not sum to 1: you added k once to the row total, but k was added to "
                                    "each of the V entries of the row, so the total grows by k * V.")
                if _close(got, (c + k) / c.sum(1, keepdim=True).clamp_min(1e-300)) or not torch.isfinite(got).all():
                    raise Incorrect("rows do not sum to 1: after adding k to every count, divide by the new row "
                                    "total (the old total + k * V).")
                if _close(got, c / c.sum(1, keepdim=True).clamp_min(1e-300) + k):
                    raise Incorrect("add k to the counts before normalising, not to the probabilities.")
            expect_close(got, want, what=f"the smoothed probabilities (k={k})", atol=ATOL, names="prev next")


EXERCISES = ExerciseSet("01", "Markov chains and the bigram model", [
    Question(
        key="q1", title="Counts into probabilities", answer="normalise_rows", checker=_check_normalise_rows,
        hints=["Row i holds how often each token followed token i. Divide every row by its own total.",
               "`counts.sum(dim=1, keepdim=True)` has shape (V, 1), so it divides each row by that row's total. "
               "Convert to float first so the division is not whole-number division."],
        solution='''
def normalise_rows(counts):
    counts = counts.double()
    return counts / counts.sum(dim=1, keepdim=True)
''',
        success="each row is now a probability distribution over the next token: the maximum-likelihood bigram."),
    Question(
        key="q2", title="Perplexity", answer="perplexity", checker=_check_perplexity,
        hints=["The cross-entropy is the average of -log p over the tokens; perplexity is exp of that.",
               "`torch.exp(-torch.log(p).mean())`, and `.item()` makes it a Python number."],
        solution='''
def perplexity(p):
    return torch.exp(-torch.log(p).mean()).item()
''',
        success="perplexity is the number of equally likely choices that would be as surprising as your model."),
    Question(
        key="q3", title="Sample the next token", answer="sample_next", checker=_check_sample_next,
        hints=["`torch.multinomial(probs, num_samples=1, generator=generator)` draws one index with probability "
               "proportional to probs.",
               "It returns a tensor of shape (1,); `.item()` turns it into an int."],
        solution='''
def sample_next(probs, generator):
    return torch.multinomial(probs, num_samples=1, generator=generator).item()
''',
        success="that is the whole generate loop's inner step: predict, sample, append, repeat."),
    Question(
        key="q4", title="Add-k smoothing", answer="add_k", checker=_check_add_k,
        hints=["Pretend every pair was seen k extra times: add k to every count, then normalise each row.",
               "The new row total is the old one plus k * V, where V = counts.shape[1]."],
        solution='''
def add_k(counts, k):
    smoothed = counts.double() + k
    return smoothed / smoothed.sum(dim=1, keepdim=True)
''',
        success="no pair has probability zero any more, so no unseen pair makes the loss infinite."),
])
