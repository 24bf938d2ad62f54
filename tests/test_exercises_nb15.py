"""Notebook 15's exercises: the reference passes, agrees with the course's own code, plausible mistakes get the
intended message, blanks are blanks."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_incorrect

from course_utils import sizing
from course_utils.exercises import ____, load
from course_utils.modern import wsd_lr
from course_utils.positional import rope_frequencies

ex = load("15")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).status == "correct", q.key
        assert q.evaluate(____).status == "not attempted", q.key


def test_q1_agrees_with_the_course_rope_frequencies():
    turns = ex.q1.reference()
    for d, base, T in [(64, 10_000.0, 4096), (128, 500_000.0, 131_072)]:
        wavelengths = 2 * math.pi / rope_frequencies(d, base)
        assert turns(d, base, T) == int((wavelengths <= T).sum())


def test_q1_mistakes():
    def no_2pi(d, base, T):
        return sum(1 for i in range(d // 2) if base ** (2 * i / d) <= T)

    def half_exponent(d, base, T):
        return sum(1 for i in range(d // 2) if 2 * math.pi * base ** (i / d) <= T)

    def the_others(d, base, T):
        return sum(1 for i in range(d // 2) if 2 * math.pi * base ** (2 * i / d) > T)

    def dimensions(d, base, T):
        return 2 * sum(1 for i in range(d // 2) if 2 * math.pi * base ** (2 * i / d) <= T)

    assert_incorrect(ex.q1, no_2pi, "2 pi radians")
    assert_incorrect(ex.q1, half_exponent, "2i/d")
    assert_incorrect(ex.q1, the_others, "do NOT complete")
    assert_incorrect(ex.q1, dimensions, "not dimensions")
    assert_incorrect(ex.q1, lambda d, base, T: d / 3, "whole number")


def test_q2_agrees_with_the_course_kv_cache_bytes():
    pick = ex.q2.reference()
    budget = 24 * 2**30
    kv = pick(80, 64, 128, 131_072, budget)
    l70 = sizing.PUBLISHED["Llama-3-70B"]
    assert sizing.kv_cache_bytes(l70.with_(n_kv_heads=kv), 131_072) <= budget
    bigger = [h for h in range(kv + 1, 65) if 64 % h == 0]
    assert sizing.kv_cache_bytes(l70.with_(n_kv_heads=bigger[0]), 131_072) > budget


def test_q2_mistakes():
    def fits(L, h, hd, T, b, factor=2, nbytes=2):
        return factor * L * h * hd * T * nbytes <= b

    def any_count(L, H, hd, T, b):
        return max((h for h in range(1, H + 1) if fits(L, h, hd, T, b)), default=0)

    def keys_only(L, H, hd, T, b):
        return max((h for h in range(1, H + 1) if H % h == 0 and fits(L, h, hd, T, b, factor=1)), default=0)

    def fp32(L, H, hd, T, b):
        return max((h for h in range(1, H + 1) if H % h == 0 and fits(L, h, hd, T, b, nbytes=4)), default=0)

    def fewest(L, H, hd, T, b):
        return min((h for h in range(1, H + 1) if H % h == 0 and fits(L, h, hd, T, b)), default=0)

    def never_zero(L, H, hd, T, b):
        return max(1, max((h for h in range(1, H + 1) if H % h == 0 and fits(L, h, hd, T, b)), default=0))

    assert_incorrect(ex.q2, any_count, "divisor of n_heads")
    assert_incorrect(ex.q2, keys_only, "keys AND values")
    assert_incorrect(ex.q2, fp32, "2 bytes per number")
    assert_incorrect(ex.q2, fewest, "the MOST")
    assert_incorrect(ex.q2, never_zero, "return 0")


def test_q3_agrees_with_the_course_schedule():
    # the course's wsd_lr, summed over many small steps, approaches the area (warm-up of 0 steps: no triangle)
    area = ex.q3.reference()
    lr, total, cooldown = 1e-3, 20_000, 0.25
    summed = sum(wsd_lr(s, s / total, lr, 0, 0.0, cooldown) for s in range(total))
    assert summed == pytest.approx(area(lr, total, 0, cooldown), rel=1e-3)


def test_q3_mistakes():
    assert_incorrect(ex.q3, lambda lr, total, w, c: lr * total, "whole rectangle")
    assert_incorrect(ex.q3, lambda lr, total, w, c: lr * (total - c * total / 2), "warm-up is missing")
    assert_incorrect(ex.q3, lambda lr, total, w, c: lr * (total - w / 2), "decay is missing")
    assert_incorrect(ex.q3, lambda lr, total, w, c: lr * (total - w - c * total), "not gaps")
    assert_incorrect(ex.q3, lambda lr, total, w, c: lr * (total - w / 2 - c / 2), "FRACTION")
    assert_incorrect(ex.q3, lambda lr, total, w, c: "big", "should be a number")
    assert_incorrect(ex.q3, lambda lr, total, w, c: torch.tensor(0.5), "should be 0.8")
