"""Exercises for notebook 12 (scaling laws), each applying a law to a new question: predict a run from a power law
fitted in log space, the compute a target loss needs under a loss law, and the tokens a model of a fixed size needs
to reach a loss (training past compute-optimal, as Llama 3 did)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..scaling import CHINCHILLA, LossLaw, compute_optimal
from .core import ExerciseSet, Incorrect, Question, call


def _num(value, what: str) -> float:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.floating | np.integer):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}")
    return float(value)


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# ---- q1: predict a run from a power law fitted in log space -----------------------------------------------------

def _check_predict(predict_from_power_law) -> None:
    rng = np.random.default_rng(12)
    for k, a, n, noise, x_new in [(3.0, -0.5, 6, 0.0, 1e7), (0.02, 0.7, 8, 0.05, 3e6), (50.0, -0.08, 5, 0.02, 1e9)]:
        x = np.exp(rng.uniform(0, 12, n))
        y = k * x ** a * np.exp(noise * rng.standard_normal(n))
        what = f"predict_from_power_law(x, y, {x_new:g})"
        out = call(predict_from_power_law, x.copy(), y.copy(), x_new)
        if isinstance(out, tuple | list):
            raise Incorrect(f"{what} should return the predicted y at x_new (one number), not the fit's "
                            "(k, a): return k * x_new ** a.")
        got = _num(out, what)
        slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
        want = float(np.exp(icpt) * x_new ** slope)
        if _close(got, want):
            continue
        lin = np.polyfit(x, y, 1)
        if _close(got, float(lin[0] * x_new + lin[1])):
            raise Incorrect(f"{what}: you fitted a straight line to x and y themselves; a power law is a straight "
                            "line in (log x, log y): fit log y = log k + a log x.")
        if _close(got, float(icpt + slope * math.log(x_new))):
            raise Incorrect(f"{what}: that is log y at x_new; return y = exp(log k + a log x_new).")
        if _close(got, float(icpt * x_new ** slope)) or _close(got, float(10 ** icpt * x_new ** slope)):
            raise Incorrect(f"{what}: the prefactor k is exp(intercept) when you fit with the natural log.")
        inv_slope, inv_icpt = np.polyfit(np.log(y), np.log(x), 1)
        if _close(got, float(np.exp(-inv_icpt / inv_slope) * x_new ** (1 / inv_slope))):
            raise Incorrect(f"{what}: you regressed log x on log y; the law predicts y from x: fit log y on log x.")
        raise Incorrect(f"{what} should be {want:.6g}, got {got:.6g}")


# ---- q2: the compute a target loss needs -----------------------------------------------------------------------

def _ref_budget(law, target: float) -> float:
    if target <= law.E:
        return math.inf
    lo, hi = 1.0, 1e60                                  # the optimal loss falls with C: bisect in log C
    for _ in range(300):
        mid = math.sqrt(lo * hi)
        n, d = compute_optimal(mid, law)
        lo, hi = (mid, hi) if law(n, d) > target else (lo, mid)
    return math.sqrt(lo * hi)


def _rule_of_20(law, target: float) -> float:
    lo, hi = 1.0, 1e30
    for _ in range(300):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if law(mid, 20 * mid) > target else (lo, mid)
    return 6 * lo * 20 * lo


LAWS = [CHINCHILLA, LossLaw(E=0.5, A=4.0, B=300.0, alpha=0.1, beta=0.4), LossLaw(E=1.0, A=50.0, B=80.0, alpha=0.3,
                                                                                 beta=0.2)]


def _check_budget(budget_for_loss) -> None:
    for law, target in [(LAWS[0], 2.0), (LAWS[0], 1.8), (LAWS[1], 1.2), (LAWS[2], 1.5), (LAWS[0], 1.6)]:
        what = f"budget_for_loss({law}, {target})"
        got = _num(call(budget_for_loss, law, target), what)
        want = _ref_budget(law, target)
        if _close(got, want, rel=1e-3):
            continue
        if math.isinf(want):
            raise Incorrect(f"{what}: the target is at or below the floor E = {law.E}; no budget reaches it: "
                            "return math.inf.")
        if _close(got, _rule_of_20(law, target), rel=1e-3):
            raise Incorrect(f"{what}: you kept 20 tokens per parameter; the law's own optimum splits each budget "
                            "as compute_optimal says, which needs less compute for the same loss.")
        if _close(got, want / 6, rel=1e-3) or _close(got, want * 6, rel=1e-3):
            raise Incorrect(f"{what}: a factor of 6 is off: the budget is C = 6 N D FLOPs.")
        if _close(got, _ref_budget(LossLaw(E=0.0, A=law.A, B=law.B, alpha=law.alpha, beta=law.beta), target),
                  rel=1e-3):
            raise Incorrect(f"{what}: the floor E is missing: the loss is E + A/N^alpha + B/D^beta.")
        raise Incorrect(f"{what} should be about {want:.4g} FLOPs, got {got:.4g}")


# ---- q3: the tokens a model of a fixed size needs ----------------------------------------------------------------

def _ref_tokens(law, N: float, target: float) -> float:
    room = target - law.E - law.A / N ** law.alpha
    return math.inf if room <= 0 else (law.B / room) ** (1 / law.beta)


def _check_tokens(tokens_for_loss) -> None:
    for law, N, target in [(LAWS[0], 8e9, 2.0), (LAWS[0], 70e9, 1.95), (LAWS[1], 1e5, 1.2), (LAWS[2], 1e6, 1.5),
                           (LAWS[0], 1e9, 2.0)]:
        what = f"tokens_for_loss({law}, {N:g}, {target})"
        got = _num(call(tokens_for_loss, law, N, target), what)
        want = _ref_tokens(law, N, target)
        if _close(got, want, rel=1e-6):
            continue
        if math.isinf(want):
            raise Incorrect(f"{what}: a model of {N:g} parameters never gets below E + A/N^alpha = "
                            f"{law.E + law.A / N ** law.alpha:.4f}, however long it trains: return math.inf.")
        room = target - law.E - law.A / N ** law.alpha
        suspects = [
            ((law.B / room) ** law.beta, "the exponent: B / D^beta = room gives D = (B / room)^(1 / beta)."),
            ((law.B / (target - law.A / N ** law.alpha)) ** (1 / law.beta), "the floor E is missing."),
            ((law.B / (target - law.E)) ** (1 / law.beta), "the model's own term A / N^alpha is missing: a model of "
                                                           "fixed size keeps that part of the loss."),
        ]
        for value, message in suspects:
            if _close(got, value, rel=1e-6):
                raise Incorrect(f"{what}: {message}")
        raise Incorrect(f"{what} should be {want:.6g} tokens, got {got:.6g}")


EXERCISES = ExerciseSet("12", "Scaling laws", [
    Question(
        key="q1", title="Predict a run from a power law", answer="predict_from_power_law", checker=_check_predict,
        hints=["Take logs: log y = log k + a log x is a straight line in (log x, log y); np.polyfit(np.log(x), "
               "np.log(y), 1) returns (a, log k).",
               "Then y_new = exp(log k) * x_new ** a."],
        solution='''
def predict_from_power_law(x, y, x_new):
    a, log_k = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(log_k) * x_new ** a)
''',
        success="this is how labs size their next model: a line through the IsoFLOP minima, read further out."),
    Question(
        key="q2", title="The compute a target loss needs", answer="budget_for_loss", checker=_check_budget,
        hints=["For each budget C the best loss is law(*compute_optimal(C, law)), and it falls as C grows: search "
               "for the C where it meets the target (bisection on log C), or solve it in closed form.",
               "Below or at the floor E no budget is enough: return math.inf. Closed form: with "
               "G = (alpha A / (beta B))^(1/(alpha+beta)) and g = alpha beta / (alpha + beta), the optimal loss is "
               "E + A G^-alpha (1 + alpha / beta) (C / 6)^-g."],
        solution='''
def budget_for_loss(law, target):
    if target <= law.E:
        return math.inf
    a, b = law.alpha, law.beta
    G = (a * law.A / (b * law.B)) ** (1 / (a + b))
    scale = law.A * G ** -a * (1 + a / b)
    return 6 * ((target - law.E) / scale) ** (-(a + b) / (a * b))
''',
        success="the same loss costs less compute on the law's optimal line than at a fixed 20 tokens per parameter "
                "whenever the law's optimum lies elsewhere."),
    Question(
        key="q3", title="Tokens for a model of fixed size", answer="tokens_for_loss", checker=_check_tokens,
        hints=["With N fixed, E and A / N^alpha stay: only B / D^beta can shrink. Solve "
               "target = E + A / N^alpha + B / D^beta for D.",
               "D = (B / (target - E - A / N^alpha)) ** (1 / beta), or math.inf when the bracket is <= 0."],
        solution='''
def tokens_for_loss(law, N, target):
    room = target - law.E - law.A / N ** law.alpha
    return math.inf if room <= 0 else (law.B / room) ** (1 / law.beta)
''',
        success="an 8B model needs far more than 20 tokens per parameter to reach a 70B model's loss: training "
                "small models long is what makes them cheap to serve."),
])
