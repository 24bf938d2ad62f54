"""Exercises for notebook 11 (the math by the numbers), each applying a count to a new case: the parameters of a
grouped-query block, the KV cache of a model with sliding-window layers, the memory per GPU when the optimizer
state is sharded (ZeRO), and the utilisation of a reported training run."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, call, expect_number


def _num(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}")
    return float(value)


def _same(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# ---- q1: one Llama-style block with grouped-query attention -------------------------------------------------------

def _block_ref(d, h, kv, f):
    d_kv = kv * (d // h)
    return 2 * d * d + 2 * d * d_kv + 3 * d * f + 2 * d


def _check_gqa_block(gqa_block_params) -> None:
    cases = [(4096, 32, 8, 14336), (8192, 64, 8, 28672), (1024, 16, 4, 2816), (768, 12, 1, 2048),
             (512, 8, 8, 1376)]
    for d, h, kv, f in cases:
        got = _num(call(gqa_block_params, d, h, kv, f), f"gqa_block_params({d}, {h}, {kv}, {f})")
        want = _block_ref(d, h, kv, f)
        if _same(got, want):
            continue
        if kv != h and _same(got, 4 * d * d + 3 * d * f + 2 * d):
            raise Incorrect(f"with n_heads={h} and n_kv_heads={kv} you gave W_K and W_V the full d_model x d_model "
                            f"size. With grouped-query attention they only make n_kv_heads heads: d_model x "
                            f"(n_kv_heads * head_dim) = {d} x {kv * (d // h)}.")
        if _same(got, 2 * d * d + 2 * d * kv * d + 3 * d * f + 2 * d):
            raise Incorrect("W_K and W_V come out as d_model x (n_kv_heads * d_model): each key/value head has "
                            "head_dim = d_model / n_heads numbers, not d_model.")
        if _same(got, want - d * f):
            raise Incorrect("the feed-forward part has two matrices in your count; SwiGLU has three (gate, up and "
                            "down: 3 * d_model * d_ff).")
        if _same(got, want - 2 * d):
            raise Incorrect("almost: you left out the two RMSNorms of the block (d_model gains each).")
        if _same(got, want + 2 * d):
            raise Incorrect("your norms have 2 * d_model numbers each, as LayerNorm with a bias; RMSNorm has only "
                            "its gain: d_model numbers.")
        if _same(got, want - d * kv * (d // h)) or _same(got, want - d * d):
            raise Incorrect("one of the four attention matrices is missing: W_Q and W_O (d x d) and W_K and W_V "
                            "(d x n_kv_heads * head_dim).")
        expect_number(got, want, what=f"gqa_block_params({d}, {h}, {kv}, {f})", rel=1e-9)


# ---- q2: the KV cache of a model with sliding-window layers ---------------------------------------------------

def _window_ref(L, every, kv, hd, T, window, nb):
    n_global = L // every
    return 2 * kv * hd * nb * (n_global * T + (L - n_global) * min(T, window))


def _check_window_cache(window_cache_bytes) -> None:
    cases = [(62, 6, 16, 128, 131_072, 1024, 2), (48, 6, 8, 256, 32_768, 1024, 2), (12, 4, 4, 64, 512, 1024, 2),
             (26, 6, 4, 256, 8192, 4096, 1), (32, 1, 8, 128, 8192, 1024, 2)]
    for args in cases:
        L, every, kv, hd, T, window, nb = args
        what = f"window_cache_bytes{args}"
        got = _num(call(window_cache_bytes, *args), what)
        want = _window_ref(*args)
        if _same(got, want):
            continue
        n_global = L // every
        if _same(got, want / 2):
            raise Incorrect(f"{what}: half the right size: every layer stores keys AND values (the factor 2).")
        if _same(got, 2 * kv * hd * nb * L * T):
            raise Incorrect(f"{what}: that is the cache with every layer global; the sliding-window layers keep "
                            f"only the last window = {window} positions.")
        if window > T and _same(got, 2 * kv * hd * nb * (n_global * T + (L - n_global) * window)):
            raise Incorrect(f"{what}: with T = {T} shorter than the window, a local layer holds only the T positions "
                            "there are: min(T, window).")
        if _same(got, 2 * kv * hd * nb * L * min(T, window)):
            raise Incorrect(f"{what}: the global layers (every {every}th, {n_global} of them) keep all T positions.")
        alt = -(-L // every)
        if alt != n_global and _same(got, 2 * kv * hd * nb * (alt * T + (L - alt) * min(T, window))):
            raise Incorrect(f"{what}: the global layers are layers {every}, {2 * every}, ...: n_layers // "
                            f"global_every = {n_global} of them, not {alt}.")
        expect_number(got, want, what=what, rel=1e-9)


# ---- q3: memory per GPU with a sharded optimizer (ZeRO) ----------------------------------------------------------

def _zero_ref(n, g, stage):
    weights, grads, states = 2 * n, 2 * n, 12 * n
    return {0: weights + grads + states, 1: weights + grads + states / g, 2: weights + (grads + states) / g,
            3: (weights + grads + states) / g}[stage]


def _check_zero(zero_bytes_per_gpu) -> None:
    for n, g in [(7e9, 8), (70e9, 64), (1_000_000, 2), (175e9, 1024)]:
        for stage in (0, 1, 2, 3):
            what = f"zero_bytes_per_gpu({n:.4g}, {g}, stage={stage})"
            got = _num(call(zero_bytes_per_gpu, n, g, stage), what)
            want = _zero_ref(n, g, stage)
            if _same(got, want, 1e-9):
                continue
            if stage in (1, 2) and _same(got, _zero_ref(n, g, stage + 1), 1e-9):
                raise Incorrect(f"{what}: you sharded one part too many. Stage 1 shards the optimizer state "
                                "(master weights, m, v); stage 2 adds the gradients; stage 3 adds the weights.")
            if stage in (2, 3) and _same(got, _zero_ref(n, g, stage - 1), 1e-9):
                raise Incorrect(f"{what}: one part too few is sharded. Stage 2 shards the gradients too, stage 3 "
                                "the weights as well.")
            if _same(got, 16 * n / g, 1e-9) and stage < 3:
                raise Incorrect(f"{what}: only stage 3 splits everything; at stage {stage} some parts stay whole "
                                "on every GPU.")
            states8 = {0: 12 * n, 1: 4 * n + 8 * n / g, 2: 2 * n + 10 * n / g, 3: 12 * n / g}[stage]
            if _same(got, states8, 1e-9):
                raise Incorrect(f"{what}: the optimizer state is 12 bytes per parameter: the fp32 master copy (4) "
                                "and Adam's m and v (4 + 4).")
            expect_number(got, want, what=what, rel=1e-9)


# ---- q4: the utilisation of a reported run -----------------------------------------------------------------------

def _check_mfu(mfu_of_run) -> None:
    cases = [(405e9, 15.6e12, 16_384, 54.0, 989e12), (175e9, 300e9, 1024, 34.0, 312e12), (8e9, 15e12, 2048, 30.0,
                                                                                              989e12)]
    for args in cases:
        N, D, G, days, peak = args
        what = f"mfu_of_run{args}"
        got = _num(call(mfu_of_run, *args), what)
        want = 6 * N * D / (G * peak * days * 86400)
        if _same(got, want, 1e-6):
            continue
        if _same(got, want / 3, 1e-6):
            raise Incorrect(f"{what}: 2 N D counts the forward pass only; training costs about 6 N D FLOPs.")
        if _same(got, want * 86400, 1e-6) or _same(got, want * 24, 1e-6):
            raise Incorrect(f"{what}: turn the days into seconds (x 86,400) before dividing: the peak is per second.")
        if _same(got, want * G, 1e-6):
            raise Incorrect(f"{what}: the run had {G:,} GPUs: divide by all of them.")
        if _same(got, 1 / want, 1e-6):
            raise Incorrect(f"{what}: upside down: utilisation = FLOPs done / FLOPs the GPUs could have done.")
        expect_number(got, want, what=what, rel=1e-6)


EXERCISES = ExerciseSet("11", "The math by the numbers", [
    Question(
        key="q1", title="The parameters of a grouped-query block", answer="gqa_block_params",
        checker=_check_gqa_block,
        hints=["A Llama-style block has no biases: W_Q, W_K, W_V, W_O, three SwiGLU matrices and two RMSNorms.",
               "head_dim = d_model // n_heads; W_K and W_V are d_model x (n_kv_heads * head_dim); "
               "the FFN is 3 * d_model * d_ff; each RMSNorm has d_model gains."],
        solution='''
def gqa_block_params(d_model, n_heads, n_kv_heads, d_ff):
    head_dim = d_model // n_heads
    attention = 2 * d_model * d_model + 2 * d_model * n_kv_heads * head_dim
    ffn = 3 * d_model * d_ff
    norms = 2 * d_model
    return attention + ffn + norms
''',
        success="times 32 layers plus the two 128,256 x 4,096 embeddings, this is Llama-3-8B's 8,030,261,248."),
    Question(
        key="q2", title="The cache of a model with sliding-window layers", answer="window_cache_bytes",
        checker=_check_window_cache,
        hints=["A global layer stores keys and values for all T positions; a sliding-window layer only for the last "
               "min(T, window).",
               "n_global = n_layers // global_every; bytes = 2 * kv_heads * head_dim * bytes_per_number * "
               "(n_global * T + (n_layers - n_global) * min(T, window))."],
        solution='''
def window_cache_bytes(n_layers, global_every, kv_heads, head_dim, T, window, bytes_per_number):
    n_global = n_layers // global_every
    positions = n_global * T + (n_layers - n_global) * min(T, window)
    return 2 * kv_heads * head_dim * bytes_per_number * positions
''',
        success="five local layers for every global one cut a 128K-token cache by about 6x: why Gemma 3 mixes them."),
    Question(
        key="q3", title="Memory per GPU with a sharded optimizer", answer="zero_bytes_per_gpu", checker=_check_zero,
        hints=["Per parameter: bf16 weights 2, bf16 gradients 2, optimizer state 12 (fp32 master copy 4, m 4, v 4).",
               "Stage 0 keeps all on every GPU; stage 1 divides the 12 by n_gpus; stage 2 also the gradients' 2; "
               "stage 3 everything."],
        solution='''
def zero_bytes_per_gpu(n_params, n_gpus, stage):
    weights, grads, states = 2 * n_params, 2 * n_params, 12 * n_params
    if stage == 0:
        return weights + grads + states
    if stage == 1:
        return weights + grads + states / n_gpus
    if stage == 2:
        return weights + (grads + states) / n_gpus
    return (weights + grads + states) / n_gpus
''',
        success="with stage 3 on 64 GPUs a 70B model needs 17.5 GB per GPU for its training state, instead of "
                "1.1 TB on one."),
    Question(
        key="q4", title="The utilisation of a reported run", answer="mfu_of_run", checker=_check_mfu,
        hints=["The run did 6 N D FLOPs. The GPUs could have done n_gpus x peak_flops x seconds.",
               "6 * n_params * n_tokens / (n_gpus * peak_flops * days * 86400)"],
        solution='''
def mfu_of_run(n_params, n_tokens, n_gpus, days, peak_flops):
    return 6 * n_params * n_tokens / (n_gpus * peak_flops * days * 86400)
''',
        success="utilisations reported for large runs are mostly between 30% and 50%: the rest goes to "
                "communication, memory traffic and restarts after failures."),
])
