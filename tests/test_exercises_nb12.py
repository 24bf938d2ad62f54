"""Notebook 12's exercises: the reference passes and agrees with the course's scaling code, plausible mistakes get
the intended message, blanks are blanks."""

from __future__ import annotations

import math

import numpy as np
from helpers import assert_incorrect

from course_utils import scaling
from course_utils.exercises import BLANK, load
from course_utils.exercises.nb12 import _ref_budget, _rule_of_20

ex = load("12")
CH = scaling.CHINCHILLA


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).passed, q.key
        assert q.evaluate(BLANK).status == "not attempted", q.key
        assert q.evaluate(lambda *a: BLANK).status == "not attempted", q.key


def test_q1_agrees_with_the_course_fit():
    x = np.array([1e3, 1e4, 1e5])
    y = 2.0 * x ** 0.3
    k, a = scaling.fit_power_law(x, y)
    assert math.isclose(ex.q1.reference()(x, y, 1e7), k * 1e7 ** a, rel_tol=1e-9)


def test_q1_mistakes():
    def linear(x, y, x_new):
        m, c = np.polyfit(x, y, 1)
        return m * x_new + c

    def log_only(x, y, x_new):
        a, c = np.polyfit(np.log(x), np.log(y), 1)
        return c + a * np.log(x_new)

    def no_exp(x, y, x_new):
        a, c = np.polyfit(np.log(x), np.log(y), 1)
        return c * x_new ** a

    def inverted(x, y, x_new):
        s, c = np.polyfit(np.log(y), np.log(x), 1)
        return np.exp(-c / s) * x_new ** (1 / s)

    def fit_only(x, y, x_new):
        a, c = np.polyfit(np.log(x), np.log(y), 1)
        return np.exp(c), a

    assert_incorrect(ex.q1, linear, "straight line to x and y")
    assert_incorrect(ex.q1, log_only, "that is log y")
    assert_incorrect(ex.q1, no_exp, "exp(intercept)")
    assert_incorrect(ex.q1, inverted, "regressed log x on log y")
    assert_incorrect(ex.q1, fit_only, "not the fit's")
    assert_incorrect(ex.q1, lambda x, y, x_new: 1.0, "should be")


def test_q2_closed_form_agrees_with_the_course_compute_optimal():
    budget = ex.q2.reference()
    for target in (2.0, 1.8):
        C = budget(CH, target)
        assert math.isclose(CH(*scaling.compute_optimal(C, CH)), target, rel_tol=1e-9)
        assert math.isclose(C, _ref_budget(CH, target), rel_tol=1e-6)
    assert budget(CH, CH.E) == math.inf


def test_q2_mistakes():
    good = ex.q2.reference()

    def no_floor(law, target):
        return good(scaling.LossLaw(E=0.0, A=law.A, B=law.B, alpha=law.alpha, beta=law.beta), target)

    assert_incorrect(ex.q2, _rule_of_20, "20 tokens per parameter")
    assert_incorrect(ex.q2, lambda law, t: good(law, t) / 6 if t > law.E else math.inf, "factor of 6")
    assert_incorrect(ex.q2, no_floor, "floor E is missing")
    assert_incorrect(ex.q2, lambda law, t: good(law, max(t, law.E + 0.05)), "return math.inf")
    assert_incorrect(ex.q2, lambda law, t: scaling.compute_optimal(1e20, law), "should be a number")


def test_q3_mistakes():
    def room(law, N, t):
        return t - law.E - law.A / N ** law.alpha

    def wrong_exponent(law, N, t):
        return (law.B / room(law, N, t)) ** law.beta if room(law, N, t) > 0 else math.inf

    def no_floor(law, N, t):
        return (law.B / (t - law.A / N ** law.alpha)) ** (1 / law.beta)

    def no_model_term(law, N, t):
        return (law.B / (t - law.E)) ** (1 / law.beta)

    def never_inf(law, N, t):
        return (law.B / abs(room(law, N, t))) ** (1 / law.beta)

    assert_incorrect(ex.q3, wrong_exponent, "the exponent")
    assert_incorrect(ex.q3, no_floor, "floor E is missing")
    assert_incorrect(ex.q3, no_model_term, "own term A / N^alpha is missing")
    assert_incorrect(ex.q3, never_inf, "return math.inf")
