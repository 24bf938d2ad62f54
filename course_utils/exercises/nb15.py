"""Exercises for notebook 15 (today's recipe): RMSNorm, the width of a SwiGLU layer for a parameter budget, and
one Newton-Schulz step of Muon."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, diagnose, expect_shape

# ---- q1: RMSNorm ---------------------------------------------------------------------------------------------------


def _check_rms_normalize(rms_normalize) -> None:
    g = torch.Generator().manual_seed(15)
    for shape, eps in [((4, 8), 1e-6), ((2, 3, 16), 1e-5), ((5, 6), 0.5)]:
        x = torch.randn(*shape, generator=g) * 3 + 2          # a mean far from 0: LayerNorm would differ
        w = torch.rand(shape[-1], generator=g) + 0.5
        want = F.rms_norm(x, (shape[-1],), w, eps)
        got = expect_shape(call(rms_normalize, x.clone(), w.clone(), eps), shape, name="rms_normalize(x, g, eps)")
        ms = x.pow(2).mean(-1, keepdim=True)
        suspects = [
            (F.layer_norm(x, (shape[-1],), w, None, eps),
             "you subtracted the mean: that is LayerNorm. RMSNorm only divides by the root of the mean square: "
             "x / sqrt(mean(x^2) + eps) * g."),
            (x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w,
             "you divided by the root of the SUM of squares (the vector's length); RMSNorm uses the MEAN of the "
             "squares over the last dimension, so a vector of d ones keeps its size."),
            (x / (ms + eps) * w, "you forgot the square root: divide by sqrt(mean(x^2) + eps), not by mean(x^2)."),
            (x / torch.sqrt(ms + eps), "the gain g is missing: multiply by g at the end."),
            (x / (torch.sqrt(ms) + eps) * w,
             f"eps goes inside the square root: sqrt(mean(x^2) + eps) (it matters for eps={eps})."),
            (x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * w,
             "you averaged over the wrong dimension: RMSNorm normalises each vector over its LAST dimension "
             "(mean(dim=-1, keepdim=True))."),
        ]
        diagnose(got, want, suspects, what="rms_normalize(x, g, eps)", atol=1e-5)


# ---- q2: a SwiGLU layer for a parameter budget ----------------------------------------------------------------------

def _check_swiglu_width(swiglu_width) -> None:
    for d, budget in [(128, 131_072), (96, 50_000), (384, 1_179_648), (64, 40_000)]:
        got = call(swiglu_width, d, budget)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float):
            raise Incorrect(f"swiglu_width({d}, {budget}) should be a number (the hidden width), got "
                            f"{type(got).__name__}")
        want = round(budget / (3 * d))
        if got == want:
            continue
        if got in (round(budget / (2 * d)), budget // (2 * d)):
            raise Incorrect("SwiGLU has THREE matrices of d x h weights (W1 the gate, W3 the value, W2 back down), "
                            "not two: h = budget / (3 d).")
        if got in (round(budget / d), budget // d):
            raise Incorrect("each of the three matrices holds d x h weights: h = budget / (3 d), not budget / d.")
        if abs(got - round(8 * d / 3)) <= 1 and want != round(8 * d / 3):
            raise Incorrect(f"8d/3 is the answer only when the budget is that of a GELU layer of width 4d "
                            f"(8 d^2 weights); here the budget is {budget:,} for d={d}: use budget / (3 d).")
        if isinstance(got, float) and not float(got).is_integer():
            raise Incorrect(f"a layer has a whole number of hidden units: round budget / (3 d) to the nearest "
                            f"integer (got {got}).")
        raise Incorrect(f"swiglu_width({d}, {budget:,}) should be {want} (3 x {d} x {want} = {3 * d * want:,} "
                        f"weights, the closest to the budget), got {got}.")


# ---- q3: one Newton-Schulz step ------------------------------------------------------------------------------------

def _check_ns_step(ns_step) -> None:
    g = torch.Generator().manual_seed(5)
    a, b, c = 3.4445, -4.7750, 2.0315
    for shape in [(4, 4), (3, 6), (2, 5)]:
        X = torch.randn(*shape, generator=g, dtype=torch.float64)
        X = X / X.norm()
        A = X @ X.T
        want = a * X + b * A @ X + c * A @ A @ X
        out = call(ns_step, X.clone(), a, b, c)
        got = as_tensor(out, "ns_step(X, a, b, c)")
        if tuple(got.shape) != shape:
            raise Incorrect(f"wrong shape: expected {shape} (the same as X), got {tuple(got.shape)}. "
                            "Build the Gram matrix A = X @ X.T (m x m) and multiply it on the LEFT of X.")
        B = X.T @ X
        square = shape[0] == shape[1]
        suspects = [
            (a * X + b * B @ X + c * B @ B @ X if square else want + 1,
             "you multiplied X.T @ X on the LEFT of X; the Gram matrix on the left is A = X @ X.T: "
             "a X + b A X + c A^2 X (equivalently X (X.T X) on the right)."),
            (a * X + b * A @ X + c * A @ X, "the last term needs A squared: c * A @ A @ X, not c * A @ X."),
            (a * X + b * A @ X, "the quintic term c * A @ A @ X is missing."),
            ((a * X + b * A @ X + c * A @ A @ X) / (a * X + b * A @ X + c * A @ A @ X).norm(),
             "do not normalise inside the step: X is scaled to norm 1 once, before the first step."),
        ]
        diagnose(got.double(), want, suspects, what="ns_step(X, a, b, c)", atol=1e-8)


EXERCISES = ExerciseSet("15", "Today's recipe", [
    Question(
        key="q1", title="RMSNorm", answer="rms_normalize", checker=_check_rms_normalize,
        hints=["Only one statistic: the mean of the squares over the last dimension, "
               "x.pow(2).mean(-1, keepdim=True).",
               "x / torch.sqrt(mean_square + eps) * g"],
        solution='''
def rms_normalize(x, g, eps):
    ms = x.pow(2).mean(dim=-1, keepdim=True)
    return x / torch.sqrt(ms + eps) * g
''',
        success="one statistic instead of two, no bias: that is what Llama, Mistral and Qwen use in every block."),
    Question(
        key="q2", title="A SwiGLU layer for a parameter budget", answer="swiglu_width", checker=_check_swiglu_width,
        hints=["Count the weights of SwiGLU(x) = (SiLU(x W1) * (x W3)) W2 with W1, W3: d x h and W2: h x d.",
               "3 d h = budget, so h = round(budget / (3 * d))."],
        solution='''
def swiglu_width(d, budget):
    return round(budget / (3 * d))
''',
        success="that is why Llama's hidden width is about 8d/3 instead of 4d: the same budget, three matrices."),
    Question(
        key="q3", title="One Newton-Schulz step", answer="ns_step", checker=_check_ns_step,
        hints=["A = X @ X.T is the small Gram matrix (m x m).",
               "return a * X + b * (A @ X) + c * (A @ A @ X)"],
        solution='''
def ns_step(X, a, b, c):
    A = X @ X.T
    return a * X + b * (A @ X) + c * (A @ A @ X)
''',
        success="each step maps every singular value s to a s + b s^3 + c s^5 and keeps the singular vectors: five "
                "steps bring them all near 1, which is Muon's orthogonalisation without an SVD."),
])
