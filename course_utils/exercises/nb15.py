"""Exercises for notebook 15 (today's recipe), each applying one change to a new question: which of RoPE's pairs
turn fully within a context, how many key/value heads fit a cache budget (GQA), and how much learning rate a
warm-up-stable-decay schedule spends."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, call

# ---- q1: which RoPE pairs turn fully within a context ------------------------------------------------------------


def _ref_turns(d: int, base: float, T: int) -> int:
    return sum(1 for i in range(d // 2) if 2 * math.pi * base ** (2 * i / d) <= T)


def _whole(got, what: str) -> int:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, int | float) or not float(got).is_integer():
        raise Incorrect(f"{what} should be a whole number, got {got!r}")
    return int(got)


def _check_pairs_that_turn(pairs_that_turn) -> None:
    for d, base, T in [(64, 10_000.0, 4096), (128, 10_000.0, 8192), (64, 500_000.0, 131_072), (32, 100.0, 50),
                       (16, 10_000.0, 6)]:
        what = f"pairs_that_turn({d}, {base:g}, {T})"
        got, want = _whole(call(pairs_that_turn, d, base, T), what), _ref_turns(d, base, T)
        if got == want:
            continue
        no_2pi = sum(1 for i in range(d // 2) if base ** (2 * i / d) <= T)
        half = sum(1 for i in range(d // 2) if 2 * math.pi * base ** (i / d) <= T)
        if got == no_2pi:
            raise Incorrect(f"{what}: 1 / theta_i is the positions per RADIAN; a full turn is 2 pi radians, so the "
                            "wavelength is 2 pi / theta_i = 2 pi base^(2i/d) positions.")
        if got == half:
            raise Incorrect(f"{what}: the exponent is 2i/d (pair i holds dimensions 2i and 2i+1), not i/d.")
        if got == d // 2 - want:
            raise Incorrect(f"{what}: you counted the pairs that do NOT complete a turn; count those whose "
                            f"wavelength is at most T = {T}.")
        if got == d - 2 * want or got == 2 * want:
            raise Incorrect(f"{what}: count pairs (d/2 of them), not dimensions.")
        raise Incorrect(f"{what} should be {want}, got {got}")


# ---- q2: key/value heads for a cache budget ------------------------------------------------------------------------

def _cache(n_layers: int, kv: int, head_dim: int, T: int, nbytes: float = 2) -> float:
    return 2 * n_layers * kv * head_dim * T * nbytes


def _ref_kv(n_layers: int, n_heads: int, head_dim: int, T: int, budget: float) -> int:
    fits = [h for h in range(1, n_heads + 1) if n_heads % h == 0 and _cache(n_layers, h, head_dim, T) <= budget]
    return max(fits, default=0)


def _check_kv_heads(kv_heads_for_budget) -> None:
    GiB = 2**30
    for L, H, hd, T, budget in [(32, 32, 128, 32_768, 8 * GiB), (80, 64, 128, 131_072, 24 * GiB),
                                (32, 32, 128, 8192, 3 * GiB), (24, 12, 64, 4096, 40 * 2**20),
                                (32, 32, 128, 1_000_000, 1 * GiB), (12, 12, 64, 1024, 2 * GiB)]:
        what = f"kv_heads_for_budget({L}, {H}, {hd}, {T:,}, {budget / GiB:g} GiB)"
        got, want = _whole(call(kv_heads_for_budget, L, H, hd, T, budget), what), _ref_kv(L, H, hd, T, budget)
        if got == want:
            continue
        plain = [h for h in range(1, H + 1) if _cache(L, h, hd, T) <= budget]
        if got == max(plain, default=0) and got and H % got:
            raise Incorrect(f"{what}: {got} key/value heads do not divide the {H} query heads; in GQA each "
                            "key/value head serves the same number of query heads, so pick a divisor of n_heads.")
        if got == max((h for h in range(1, H + 1) if H % h == 0 and _cache(L, h, hd, T) / 2 <= budget), default=0):
            raise Incorrect(f"{what}: the cache stores keys AND values: 2 x layers x kv_heads x head_dim x T "
                            "numbers.")
        if got == max((h for h in range(1, H + 1) if H % h == 0 and _cache(L, h, hd, T, 4) <= budget), default=0):
            raise Incorrect(f"{what}: the cache is in bf16, 2 bytes per number, not 4.")
        if want == 0:
            raise Incorrect(f"{what}: even one key/value head needs {_cache(L, 1, hd, T) / GiB:.2f} GiB, more than "
                            "the budget: return 0.")
        if got == min((h for h in range(1, H + 1) if H % h == 0 and _cache(L, h, hd, T) <= budget), default=0):
            raise Incorrect(f"{what}: you returned the fewest heads that fit; return the MOST (more key/value "
                            "heads keep more of multi-head attention's quality).")
        raise Incorrect(f"{what} should be {want}, got {got}")


# ---- q3: the area under a warm-up-stable-decay schedule ----------------------------------------------------------

def _ref_area(lr: float, total: int, warmup: int, cooldown: float) -> float:
    return lr * (total - warmup / 2 - cooldown * total / 2)


def _check_wsd_area(wsd_area) -> None:
    for lr, total, warmup, cooldown in [(1e-3, 1000, 100, 0.2), (6e-3, 2730, 30, 0.3), (0.02, 500, 0, 0.5),
                                        (3e-4, 10_000, 2000, 0.1)]:
        what = f"wsd_area({lr:g}, {total}, {warmup}, {cooldown:g})"
        got = call(wsd_area, lr, total, warmup, cooldown)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float):
            raise Incorrect(f"{what} should be a number (learning rate x steps), got {got!r}")
        want = _ref_area(lr, total, warmup, cooldown)
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        suspects = [
            (lr * total, "that is the whole rectangle lr x total: the warm-up and the decay are triangles that "
                         "each lose half of their rectangle."),
            (lr * (total - cooldown * total / 2), "the warm-up is missing: it climbs from 0, losing lr x warmup / 2."),
            (lr * (total - warmup / 2), "the decay is missing: the last cooldown x total steps fall linearly to 0, "
                                        "losing lr x cooldown x total / 2."),
            (lr * (total - warmup - cooldown * total), "the warm-up and the decay are triangles, not gaps: each "
                                                       "keeps half of its rectangle."),
            (lr * (total - warmup / 2 - cooldown / 2), "cooldown is a FRACTION of the total steps: the decay lasts "
                                                       "cooldown x total steps."),
        ]
        for value, message in suspects:
            if math.isclose(got, value, rel_tol=1e-6) and not math.isclose(value, want, rel_tol=1e-6):
                raise Incorrect(f"{what}: {message}")
        raise Incorrect(f"{what} should be {want:.6g}, got {got:.6g}")


EXERCISES = ExerciseSet("15", "Today's recipe", [
    Question(
        key="q1", title="Which RoPE pairs turn fully within a context", answer="pairs_that_turn",
        checker=_check_pairs_that_turn,
        hints=["Pair i rotates by theta_i = base^(-2i/d) radians per position, so a full turn (2 pi radians) takes "
               "2 pi / theta_i = 2 pi base^(2i/d) positions.",
               "Count the i in range(d // 2) with 2 * math.pi * base ** (2 * i / d) <= T."],
        solution='''
def pairs_that_turn(d, base, T):
    return sum(1 for i in range(d // 2) if 2 * math.pi * base ** (2 * i / d) <= T)
''',
        success="the pairs that never complete a turn within the context are the ones that tell far positions "
                "apart; raising the base (Llama 3 uses 500,000) makes more of them slow, for longer contexts."),
    Question(
        key="q2", title="Key/value heads for a cache budget", answer="kv_heads_for_budget", checker=_check_kv_heads,
        hints=["The cache of h key/value heads holds 2 x n_layers x h x head_dim x T numbers of 2 bytes (bf16).",
               "Try every h from n_heads down to 1 that divides n_heads; return the first that fits, or 0."],
        solution='''
def kv_heads_for_budget(n_layers, n_heads, head_dim, T, budget_bytes):
    for h in range(n_heads, 0, -1):
        if n_heads % h == 0 and 2 * n_layers * h * head_dim * T * 2 <= budget_bytes:
            return h
    return 0
''',
        success="that is the trade GQA makes: Llama-3-70B keeps 8 key/value heads for 64 query heads, so a 128K "
                "context fits in a few tens of GiB."),
    Question(
        key="q3", title="The area under warm-up-stable-decay", answer="wsd_area", checker=_check_wsd_area,
        hints=["Draw it: a triangle (warm-up, 0 to lr over warmup steps), a rectangle at lr, a triangle (lr down to "
               "0 over the last cooldown x total steps).",
               "lr x (total - warmup / 2 - cooldown x total / 2)"],
        solution='''
def wsd_area(lr, total, warmup, cooldown):
    return lr * (total - warmup / 2 - cooldown * total / 2)
''',
        success="a cosine after the same warm-up spends only about lr x total / 2: WSD keeps the rate high for "
                "longer, which is why its loss stays higher until the decay and then drops."),
])
