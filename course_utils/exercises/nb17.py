"""Exercises for notebook 17 (inside a real LLM): an induction score from attention weights, a logit-lens readout
with RMSNorm and a tied output layer, and the verdict of an ablation against random heads."""

from __future__ import annotations

import statistics

import torch

from ..probes import induction_score
from .core import ExerciseSet, Incorrect, Question, as_tensor, call, diagnose, expect_shape

# ---- q1: an induction score ----------------------------------------------------------------------------------------


def _random_pattern(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    T = shape[-1]
    scores = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


def _check_induction(induction_strength) -> None:
    g = torch.Generator().manual_seed(17)
    for shape, n, start in [((2, 3, 11, 11), 5, 1), ((4, 9, 9), 4, 0), ((1, 2, 16, 16), 6, 3)]:
        A = _random_pattern(shape, g)
        want = induction_score(A, n, offset=start)
        got = expect_shape(call(induction_strength, A.clone(), n, start), tuple(want.shape),
                           name=f"induction_strength(A, n={n}, start={start})",
                           known={tuple(shape[:-1]): "you kept one value per query position: average over the "
                                                     "n positions of the second copy (the last dimension left)."})
        i = torch.arange(start + n, start + 2 * n)
        suspects = [
            (A[..., i, i - n].mean(-1),
             "that is the DUPLICATE-token score (the same token in the first copy, i - n). An induction head looks "
             "one further: at the token that came after it, i - n + 1."),
            (A[..., i, i - n - 1].mean(-1), "one step too far back: the induction target is i - n + 1, not i - n - 1."),
            (A[..., i - n, i - 2 * n + 1].mean(-1) if start >= n else want + 1,
             "the queries are the positions of the SECOND copy: start + n .. start + 2n - 1."),
            (A[..., i[:-1], i[:-1] - n + 1].mean(-1),
             "you left out the last position of the second copy: use all n of them."),
        ]
        diagnose(got.double(), want, suspects, what=f"induction_strength(A, n={n}, start={start})", atol=1e-7)


# ---- q2: a logit-lens readout --------------------------------------------------------------------------------------

def _check_lens(lens_readout) -> None:
    g = torch.Generator().manual_seed(30)
    for d, V, eps in [(8, 13, 1e-5), (16, 7, 1e-6), (12, 20, 0.3)]:
        x = torch.randn(d, generator=g, dtype=torch.float64) * 4 + 1
        gain = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
        E = torch.randn(V, d, generator=g, dtype=torch.float64)
        h = x / torch.sqrt(x.pow(2).mean() + eps) * gain
        want = E @ h
        out = call(lens_readout, x.clone(), gain.clone(), eps, E.clone())
        got = as_tensor(out, "lens_readout(x, g, eps, E)")
        if tuple(got.shape) != (V,):
            raise Incorrect(f"wrong shape: expected ({V},), one logit per token of the vocabulary, got "
                            f"{tuple(got.shape)}. The tied output layer multiplies by E^T: E @ h for a vector h.")
        ln = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * gain
        suspects = [
            (E @ x, "you skipped the final norm: the output layer reads ln_f(x), not the raw stream x."),
            (E @ ln, "that is LayerNorm (you subtracted the mean); SmolLM2's final norm is RMSNorm: "
                     "x / sqrt(mean(x^2) + eps) * g."),
            (E @ (x / torch.sqrt(x.pow(2).mean() + eps)), "the gain g of the final norm is missing."),
            (torch.softmax(want, -1), "return the logits, not the probabilities (no softmax)."),
            (E @ (x / (torch.sqrt(x.pow(2).mean()) + eps) * gain),
             "eps goes inside the square root: sqrt(mean(x^2) + eps)."),
        ]
        diagnose(got.double(), want, suspects, what="lens_readout(x, g, eps, E)", atol=1e-6)


# ---- q3: the verdict of an ablation --------------------------------------------------------------------------------

CASES = [   # (drop when the chosen heads are ablated, drops for random draws of as many heads)
    (1.9, [0.10, 0.25, 0.05, 0.30, 0.12]),
    (0.40, [0.10, 0.25, 0.05, 0.30, 0.12]),      # mean 0.164, sample std 0.106: threshold 0.376
    (0.33, [0.10, 0.25, 0.05, 0.30, 0.12]),      # above the mean and every draw, not 2 std above the mean
    (0.365, [0.10, 0.25, 0.05, 0.30, 0.12]),     # between mean + 2 population std (0.354) and mean + 2 sample std
    (-0.5, [0.10, -0.20, 0.05]),
    (0.9, [0.2, 0.3, 0.1, 0.9, 0.2, 0.25]),
    (0.31, [0.30, 0.30, 0.29, 0.31]),
]


def _rule(target: float, drops: list[float]) -> bool:
    return target > statistics.mean(drops) + 2 * statistics.stdev(drops)


def _check_verdict(beats_random_heads) -> None:
    answers = []
    for target, drops in CASES:
        got = call(beats_random_heads, target, list(drops))
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = bool(got.item())
        if not isinstance(got, bool):
            raise Incorrect(f"beats_random_heads should return True or False, got {type(got).__name__}: {got!r:.40}")
        answers.append(got)
    if answers == [_rule(t, d) for t, d in CASES]:
        return
    mean, sd, pop = statistics.mean, statistics.stdev, statistics.pstdev
    mistakes = [   # (what a plausible wrong rule answers on every case, what is wrong with it)
        (lambda t, d: t > max(d),
         "the rule is not 'above every random draw' (that depends on how many draws you make): compare with "
         "mean + 2 x standard deviation of the random drops."),
        (lambda t, d: t > mean(d) + 2 * pop(d),
         "use the sample standard deviation (divide by n - 1, statistics.stdev or torch.std's default): with a "
         "handful of draws the population one is too small."),
        (lambda t, d: abs(t) > mean(d) + 2 * sd(d),
         "a negative drop (the loss fell) never counts as the heads mattering: compare the drop itself, not its "
         "size."),
        (lambda t, d: t > mean(d),
         "beating the random draws' MEAN is not enough: their spread matters. The rule asks for more than "
         "mean + 2 x standard deviation."),
    ]
    for wrong, message in mistakes:
        if answers == [wrong(t, d) for t, d in CASES]:
            raise Incorrect(message)
    for (target, drops), got in zip(CASES, answers, strict=True):
        if got != _rule(target, drops):
            m, s = mean(drops), sd(drops)
            raise Incorrect(f"beats_random_heads({target}, {drops}) should be {not got} (mean {m:.3g}, sample "
                            f"std {s:.3g}: the threshold mean + 2 x standard deviation is {m + 2 * s:.3g}), "
                            f"got {got}.")


EXERCISES = ExerciseSet("17", "Inside a real LLM", [
    Question(
        key="q1", title="An induction score from attention weights", answer="induction_strength",
        checker=_check_induction,
        hints=["The second copy occupies positions i = start + n, ..., start + 2n - 1. Its token at i first "
               "appeared at i - n; an induction head reads the token right after that one.",
               "i = torch.arange(start + n, start + 2 * n); return A[..., i, i - n + 1].mean(-1)"],
        solution='''
def induction_strength(A, n, start):
    i = torch.arange(start + n, start + 2 * n)       # queries: the second copy
    return A[..., i, i - n + 1].mean(dim=-1)          # keys: the token after each one's first copy
''',
        success="one number per head; computed for all 270 heads of SmolLM2 it is the heat map of section 2."),
    Question(
        key="q2", title="A logit-lens readout", answer="lens_readout", checker=_check_lens,
        hints=["The output layer reads the final norm of the stream: h = RMSNorm(x) with gain g, then logits = E h.",
               "h = x / torch.sqrt(x.pow(2).mean() + eps) * g; return E @ h"],
        solution='''
def lens_readout(x, g, eps, E):
    h = x / torch.sqrt(x.pow(2).mean() + eps) * g     # the final RMSNorm
    return E @ h                                      # the tied output layer: one logit per token
''',
        success="that is the logit lens: the same two steps the model applies after its last block, applied "
                "to any layer's stream."),
    Question(
        key="q3", title="The verdict of an ablation", answer="beats_random_heads", checker=_check_verdict,
        hints=["Compute the mean and the sample standard deviation of the random drops (statistics.mean, "
               "statistics.stdev).",
               "return target > statistics.mean(drops) + 2 * statistics.stdev(drops)"],
        solution='''
import statistics


def beats_random_heads(target, drops):
    return target > statistics.mean(drops) + 2 * statistics.stdev(drops)
''',
        success="a rule fixed before looking at the numbers keeps an ablation honest; with few random draws, "
                "say how many."),
])

