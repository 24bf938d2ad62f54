"""Notebook 12's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import numpy as np
from helpers import assert_incorrect

from course_utils import scaling
from course_utils.exercises import BLANK, load

ex = load("12")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).passed, q.key
        assert q.evaluate(BLANK).status == "not attempted", q.key
        assert q.evaluate(lambda *a: BLANK).status == "not attempted", q.key


def test_power_law_fit_agrees_with_the_course():
    x, y = np.array([1e3, 1e4, 1e5]), 2.0 * np.array([1e3, 1e4, 1e5]) ** 0.3
    assert np.allclose(ex.q1.reference()(x, y), scaling.fit_power_law(x, y))


def test_power_law_fit_mistakes():
    def fit(x, y):
        a, b = np.polyfit(np.log(x), np.log(y), 1)
        return a, b

    assert_incorrect(ex.q1, lambda x, y: (fit(x, y)[0], np.exp(fit(x, y)[1])), "return the prefactor first")
    assert_incorrect(ex.q1, lambda x, y: (fit(x, y)[1], fit(x, y)[0]), "intercept log k")
    assert_incorrect(ex.q1, lambda x, y: (10 ** fit(x, y)[1], fit(x, y)[0]), "same base")
    assert_incorrect(ex.q1, lambda x, y: (1.0, 1 / np.polyfit(np.log(y), np.log(x), 1)[0]), "regressed log x")
    assert_incorrect(ex.q1, lambda x, y: (1.0, np.polyfit(x, y, 1)[0]), "straight line through (x, y)")
    assert_incorrect(ex.q1, lambda x, y: "k, a", "two numbers")


def test_optimal_allocation_agrees_with_the_course():
    n, d = ex.q2.reference()(1e21, **{k: v for k, v in vars(scaling.CHINCHILLA).items()})
    assert (n, d) == scaling.compute_optimal(1e21, scaling.CHINCHILLA)


def test_optimal_allocation_mistakes():
    ref = ex.q2.reference()
    assert_incorrect(ex.q2, lambda C, *law: ref(C, *law)[::-1], "swapped")
    assert_incorrect(ex.q2, lambda C, *law: (math.sqrt(C / 120), 20 * math.sqrt(C / 120)), "20-tokens")
    assert_incorrect(ex.q2, lambda C, *law: (ref(C, *law)[0], C / ref(C, *law)[0]), "C = 6 N D")

    def swapped_exponent(C, E, A, B, alpha, beta):
        G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
        n = G * (C / 6) ** (alpha / (alpha + beta))
        return n, C / (6 * n)

    assert_incorrect(ex.q2, swapped_exponent, "C^(beta / (alpha + beta))")


def test_training_days_mistakes():
    ref = ex.q3.reference()
    assert_incorrect(ex.q3, lambda N, D, p, m, g: ref(N, D, p, m, g) / 3, "backward")
    assert_incorrect(ex.q3, lambda N, D, p, m, g: 6 * N * D / (p * g) / 86400, "does not run at its peak")
    assert_incorrect(ex.q3, lambda N, D, p, m, g: ref(N, D, p, m, g) * 24, "hours")
    assert_incorrect(ex.q3, lambda N, D, p, m, g: 6 * N * D / (p * m * g), "seconds")
    assert_incorrect(ex.q3, lambda N, D, p, m, g: 6 * N * D / (p * m) / 86400, "GPU-days")


def test_training_days_gpt3_is_about_a_month():
    assert 25 < ex.q3.reference()(175e9, 300e9, 312e12, 0.4, 1024) < 35


def test_bits_per_char_mistakes():
    assert_incorrect(ex.q4, lambda L, c: L * c / math.log(2), "divide by chars_per_token")
    assert_incorrect(ex.q4, lambda L, c: L / c, "nats per character")
    assert_incorrect(ex.q4, lambda L, c: L / c * math.log(2), "does not multiply")
    assert_incorrect(ex.q4, lambda L, c: L / math.log(2), "bits per token")
