"""Exercises for notebook 12 (scaling laws): a power law fitted in log space, the compute-optimal split of a
budget under a loss law, the days a training run takes on real GPUs, and a per-token loss turned into bits per
character."""

from __future__ import annotations

import math

import numpy as np
import torch

from .core import ExerciseSet, Incorrect, Question, call, expect_number


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


def _pair(out, what: str) -> tuple[float, float]:
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise Incorrect(f"{what} should return two numbers as a tuple, got {type(out).__name__}")
    return _num(out[0], f"the first number of {what}"), _num(out[1], f"the second number of {what}")


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# ---- q1: a power law by least squares in log space -------------------------------------------------------------

def _check_power_law_fit(power_law_fit) -> None:
    rng = np.random.default_rng(12)
    for k, a, n, noise in [(3.0, -0.5, 6, 0.0), (0.02, 0.7, 8, 0.05), (50.0, -0.08, 5, 0.02)]:
        x = np.exp(rng.uniform(0, 12, n))
        y = k * x ** a * np.exp(noise * rng.standard_normal(n))
        got_k, got_a = _pair(call(power_law_fit, x.copy(), y.copy()), "power_law_fit(x, y)")
        slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
        want_k, want_a = float(np.exp(icpt)), float(slope)
        if _close(got_k, want_k) and _close(got_a, want_a):
            continue
        if _close(got_k, want_a) and _close(got_a, want_k):
            raise Incorrect("you returned (a, k); return the prefactor first: (k, a).")
        if _close(got_a, want_a) and _close(got_k, icpt):
            raise Incorrect(f"the exponent is right but k = {got_k:.4g} is the intercept log k; return exp(intercept).")
        if _close(got_a, want_a) and _close(got_k, 10 ** icpt):
            raise Incorrect("you fitted with the natural log but undid it with 10**: use the same base both ways "
                            "(np.exp of a natural-log intercept).")
        inv = np.polyfit(np.log(y), np.log(x), 1)[0]
        if _close(got_a, 1 / inv) or _close(got_a, inv):
            raise Incorrect("you regressed log x on log y; the law predicts y from x: fit log y = log k + a log x.")
        lin = np.polyfit(x, y, 1)
        if _close(got_a, float(lin[0])):
            raise Incorrect("that is a straight line through (x, y); a power law is a straight line through "
                            "(log x, log y).")
        expect_number(got_a, want_a, what=f"the exponent a (true k={k}, a={a})", rel=1e-4)
        expect_number(got_k, want_k, what=f"the prefactor k (true k={k}, a={a})", rel=1e-4)


# ---- q2: the compute-optimal split of a budget ----------------------------------------------------------------

def _alloc_ref(C, E, A, B, alpha, beta):
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return G * (C / 6) ** (beta / (alpha + beta)), (C / 6) ** (alpha / (alpha + beta)) / G


def _check_optimal_allocation(optimal_allocation) -> None:
    cases = [(1e21, 1.69, 406.4, 410.7, 0.34, 0.28), (5.76e23, 1.69, 406.4, 410.7, 0.34, 0.28),
             (1e12, 0.9, 30.0, 300.0, 0.45, 0.3), (3e15, 1.2, 100.0, 50.0, 0.3, 0.5)]
    for C, E, A, B, alpha, beta in cases:
        got_n, got_d = _pair(call(optimal_allocation, C, E, A, B, alpha, beta), "optimal_allocation(...)")
        want_n, want_d = _alloc_ref(C, E, A, B, alpha, beta)
        if _close(got_n, want_n, 1e-3) and _close(got_d, want_d, 1e-3):
            continue
        if _close(got_n, want_d, 1e-3) and _close(got_d, want_n, 1e-3):
            raise Incorrect("N and D are swapped: return (N_opt, D_opt).")
        if _close(got_n, math.sqrt(C / 120), 1e-3):
            raise Incorrect("that is the 20-tokens-per-parameter rule of thumb; minimise the given law instead: "
                            "its exponents and constants decide the split.")
        if _close(got_n * got_d, C, 1e-3):
            raise Incorrect("your N and D satisfy N D = C; training costs C = 6 N D, so D = C / (6 N).")
        n_swap = (alpha * A / (beta * B)) ** (1 / (alpha + beta)) * (C / 6) ** (alpha / (alpha + beta))
        if _close(got_n, n_swap, 1e-3):
            raise Incorrect("N_opt grows as C^(beta / (alpha + beta)), not C^(alpha / (alpha + beta)): the "
                            "larger the data exponent beta, the more of the budget goes into parameters.")
        if not _close(6 * got_n * got_d, C, 1e-3):
            raise Incorrect(f"6 N D should equal the budget C = {C:.3g}; yours gives {6 * got_n * got_d:.3g}.")
        expect_number(got_n, want_n, what=f"N_opt for C={C:.3g}", rel=1e-3)


# ---- q3: days on real GPUs ---------------------------------------------------------------------------------------

def _check_training_days(training_days) -> None:
    cases = [(175e9, 300e9, 312e12, 0.4, 1024), (8e9, 15e12, 989e12, 0.4, 16384), (70e9, 1.4e12, 312e12, 0.5, 2048)]
    for N, D, peak, mfu, gpus in cases:
        got = _num(call(training_days, N, D, peak, mfu, gpus), "training_days(...)")
        want = 6 * N * D / (peak * mfu * gpus) / 86400
        if _close(got, want):
            continue
        if _close(got, want / 3):
            raise Incorrect("2 N D is one forward pass over the data; training also runs the backward pass "
                            "(about twice the forward): 6 N D.")
        if _close(got, want * mfu):
            raise Incorrect("a GPU does not run at its peak: divide by peak_flops * utilisation, not peak_flops.")
        if _close(got, want * mfu * mfu):
            raise Incorrect("multiply the peak by the utilisation (a fraction below 1): the GPUs deliver "
                            "peak * mfu FLOP/s, which makes the run longer, not shorter.")
        if _close(got, want * 24):
            raise Incorrect("that is hours; a day has 86,400 seconds.")
        if _close(got, want * 86400):
            raise Incorrect("that is seconds; divide by 86,400 for days.")
        if _close(got, want * gpus):
            raise Incorrect("that is GPU-days (one GPU's time); the n_gpus GPUs share the work: divide by n_gpus.")
        expect_number(got, want, what=f"training_days(N={N:.3g}, D={D:.3g}, ...)", rel=1e-4)


# ---- q4: from nats per token to bits per character ---------------------------------------------------------------

def _check_bits_per_char(bits_per_char) -> None:
    for loss, cpt in [(1.69, 4.0), (2.0, 3.6), (3.3, 4.4)]:
        got = _num(call(bits_per_char, loss, cpt), f"bits_per_char({loss}, {cpt})")
        want = loss / cpt / math.log(2)
        if _close(got, want):
            continue
        if _close(got, loss * cpt / math.log(2)):
            raise Incorrect("a token holds several characters, so the loss per character is smaller than per "
                            "token: divide by chars_per_token.")
        if _close(got, loss / cpt):
            raise Incorrect("that is nats per character; one bit is ln 2 = 0.693 nats: divide by math.log(2).")
        if _close(got, loss / cpt * math.log(2)):
            raise Incorrect("nats to bits divides by ln 2 (1 bit = 0.693 nats), it does not multiply.")
        if _close(got, loss / math.log(2)):
            raise Incorrect("that is bits per token; divide by the number of characters per token too.")
        expect_number(got, want, what=f"bits_per_char({loss}, {cpt})", rel=1e-4)


EXERCISES = ExerciseSet("12", "Scaling laws", [
    Question(
        key="q1", title="A power law, fitted in log space", answer="power_law_fit", checker=_check_power_law_fit,
        hints=["Take logs: log y = log k + a log x is a straight line in (log x, log y).",
               "np.polyfit(np.log(x), np.log(y), 1) returns (slope, intercept); k = np.exp(intercept)."],
        solution='''
def power_law_fit(x, y):
    a, log_k = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(log_k)), float(a)
''',
        success="this is how N_opt ~ C^a is read off the IsoFLOP minima - and why every scaling plot has log axes."),
    Question(
        key="q2", title="Split a compute budget under a loss law", answer="optimal_allocation",
        checker=_check_optimal_allocation,
        hints=["Put D = C / (6 N) into L = E + A/N^alpha + B/D^beta and set dL/dN = 0.",
               "You get alpha A / N^alpha = beta B / D^beta. Solve: N = G (C/6)^(beta/(alpha+beta)), "
               "D = (C/6)^(alpha/(alpha+beta)) / G with G = (alpha A / (beta B))^(1/(alpha+beta))."],
        solution='''
def optimal_allocation(C, E, A, B, alpha, beta):
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / 6) ** (beta / (alpha + beta))
    D = (C / 6) ** (alpha / (alpha + beta)) / G
    return N, D
''',
        success="E plays no part: the irreducible loss does not depend on how you split the budget."),
    Question(
        key="q3", title="Days on a GPU cluster", answer="training_days", checker=_check_training_days,
        hints=["The run needs C = 6 N D FLOPs.",
               "The cluster delivers peak_flops * mfu * n_gpus FLOP/s; divide, then divide seconds by 86,400."],
        solution='''
def training_days(N, D, peak_flops, mfu, n_gpus):
    flops = 6 * N * D
    return flops / (peak_flops * mfu * n_gpus) / 86400
''',
        success="GPT-3 on 1,024 A100s at 40% utilisation: about a month."),
    Question(
        key="q4", title="Nats per token to bits per character", answer="bits_per_char",
        checker=_check_bits_per_char,
        hints=["The text's total information is the same however you cut it: loss per token = chars_per_token x "
               "loss per character.", "Then 1 bit = ln 2 nats."],
        solution='''
def bits_per_char(loss_per_token, chars_per_token):
    return loss_per_token / chars_per_token / math.log(2)
''',
        success="Chinchilla's E = 1.69 nats per token is about 0.6 bits per character at 4 characters per token."),
])
