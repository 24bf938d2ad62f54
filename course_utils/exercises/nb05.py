"""Exercises for notebook 05 (multi-head attention): grouped-query attention and its parameters, counting the
parameters of multi-head attention, and the whole multi-head forward pass."""

from __future__ import annotations

import math

import torch

from .core import (
    ExerciseSet,
    Incorrect,
    LearnerCodeError,
    Question,
    as_tensor,
    call,
    describe_shape,
    diagnose,
)

ATOL = 1e-5




def _run(fn, *args):
    """Call the learner's function; a .view on a non-contiguous tensor gets a specific explanation."""
    try:
        return call(fn, *args)
    except LearnerCodeError as err:
        if "view size is not compatible" in str(err):
            raise Incorrect("after .transpose the tensor is no longer contiguous in memory, so .view cannot "
                            "reshape it: write .contiguous().view(...) or use .reshape(...) instead. "
                            f"(Details: {err})") from None
        raise


def _ref_split(x: torch.Tensor, h: int) -> torch.Tensor:
    B, T, d = x.shape
    return x.view(B, T, h, d // h).transpose(1, 2)


def _ref_merge(x: torch.Tensor) -> torch.Tensor:
    B, h, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, h * dh)


# ---- q1: grouped-query attention -------------------------------------------------------------------------------

def _gqa(q, k, v, interleave=True, scale=True):
    q, k, v = q.double(), k.double(), v.double()
    r = q.shape[1] // k.shape[1]
    if interleave:
        k, v = k.repeat_interleave(r, dim=1), v.repeat_interleave(r, dim=1)
    else:
        k, v = k.repeat(1, r, 1, 1), v.repeat(1, r, 1, 1)
    s = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    return torch.softmax(s, dim=-1) @ v


def _check_grouped_query_attention(grouped_query_attention) -> None:
    g = torch.Generator().manual_seed(5)
    for B, h, n_kv, T, d in [(2, 4, 2, 5, 8), (1, 6, 3, 4, 4), (2, 8, 1, 3, 6), (1, 4, 4, 5, 8)]:
        q = torch.randn(B, h, T, d, generator=g)
        k, v = torch.randn(B, n_kv, T, d, generator=g), torch.randn(B, n_kv, T, d, generator=g)
        got = as_tensor(_run(grouped_query_attention, q.clone(), k.clone(), v.clone()))
        if tuple(got.shape) == (B, n_kv, T, d) and n_kv != h:
            raise Incorrect(f"your output has shape {tuple(got.shape)}, one per K/V head; there is one output per "
                            f"*query* head: expected (B={B}, h={h}, T={T}, d_head={d}). Repeat each K/V head for "
                            "its group of query heads before attending.")
        if tuple(got.shape) != (B, h, T, d):
            raise Incorrect(f"wrong shape: expected (B={B}, h={h}, T={T}, d_head={d}), got "
                            f"{tuple(got.shape)}.")
        diagnose(got, _gqa(q, k, v), [
            (_gqa(q, k, v, interleave=False),
             f"the query heads are paired with the wrong K/V heads (h={h}, {n_kv} K/V heads): query heads "
             f"0..{h // n_kv - 1} share K/V head 0, the next {h // n_kv} share K/V head 1, and so on. "
             "`.repeat` tiles the K/V heads (0, 1, 0, 1, ...); `.repeat_interleave(h // n_kv, dim=1)` "
             "groups them (0, 0, 1, 1, ...)."),
            (_gqa(q, k, v, scale=False), f"forgot to divide the scores by sqrt(d_head) = sqrt({d})."),
        ], f"the outputs (B={B}, h={h}, K/V heads={n_kv}, T={T}, d_head={d})")


# ---- q2: the parameters of grouped-query attention ------------------------------------------------------------

def _gqa_count(d: int, h: int, n_kv: int, bias: bool) -> int:
    kv = n_kv * (d // h)
    return 2 * d * d + 2 * d * kv + ((2 * d + 2 * kv) if bias else 0)


def _check_gqa_param_count(gqa_param_count) -> None:
    for d, h, n_kv in [(512, 8, 2), (64, 4, 1), (768, 12, 4), (128, 8, 8)]:
        for bias in (True, False):
            got = call(gqa_param_count, d, h, n_kv, bias)
            try:
                value = int(as_tensor(got).item()) if not isinstance(got, int) else got
            except (ValueError, RuntimeError):
                raise Incorrect(f"gqa_param_count should return one whole number, got {got!r:.60}") from None
            want = _gqa_count(d, h, n_kv, bias)
            if value == want:
                continue
            kv = n_kv * (d // h)
            case = f"(d_model={d}, n_heads={h}, n_kv_heads={n_kv}, bias={bias})"
            if n_kv != h and value == 4 * d * d + (4 * d if bias else 0):
                raise Incorrect(f"{case}: that is the count of ordinary multi-head attention. K and V have only "
                                f"n_kv_heads heads: W_K and W_V are d_model x (n_kv_heads * d_head) = {d} x {kv}.")
            if n_kv != h and value == 4 * d * kv + (4 * kv if bias else 0):
                raise Incorrect(f"{case}: only K and V are shared; the queries and the output projection keep all "
                                f"n_heads heads, so W_Q and W_O stay {d} x {d}.")
            if bias and value == _gqa_count(d, h, n_kv, False):
                raise Incorrect(f"{case}: off by the biases: W_Q and W_O have {d} each, W_K and W_V {kv} each.")
            if not bias and value == _gqa_count(d, h, n_kv, True):
                raise Incorrect(f"{case}: with bias=False there are no bias vectors to count.")
            if bias and n_kv != h and value == _gqa_count(d, h, n_kv, False) + 4 * d:
                raise Incorrect(f"{case}: the K and V biases are as long as their outputs, n_kv_heads * d_head = "
                                f"{kv}, not d_model = {d}.")
            raise Incorrect(f"{case}: expected {want:,} parameters, got {value:,}.")


# ---- q3: count the parameters ----------------------------------------------------------------------------------

def _check_mha_param_count(mha_param_count) -> None:
    for d, h, bias in [(512, 8, True), (64, 4, False), (128, 2, True), (50, 5, True), (96, 12, False),
                       (32, 1, True)]:
        got = call(mha_param_count, d, h, bias)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if not isinstance(got, int):
            raise Incorrect(f"mha_param_count should return a whole number (an int), got {type(got).__name__}")
        dh = d // h
        want = 4 * d * d + (4 * d if bias else 0)
        if got == want:
            continue
        where = f"for d_model={d}, n_heads={h}, bias={bias}: expected {want}, got {got}"
        if bias and got == 4 * d * d:
            raise Incorrect(f"the parameter count is off by the biases ({where}): each of the four projections "
                            f"W_Q, W_K, W_V, W_O also has a bias vector of d_model numbers, 4 * d_model in all.")
        if not bias and got == 4 * d * d + 4 * d:
            raise Incorrect(f"with bias=False there are no bias vectors ({where}): count only the four "
                            "d_model x d_model weight matrices.")
        if got in (3 * d * d, 3 * d * d + 3 * d):
            raise Incorrect(f"you counted W_Q, W_K and W_V but not the output projection W_O ({where}).")
        if got in (4 * h * dh * dh, 4 * h * dh * dh + 4 * d, 3 * h * dh * dh + d * d + 4 * d,
                   3 * h * dh * dh + d * d):
            raise Incorrect(f"you counted h small d_head x d_head matrices ({where}). Each head's W_Q^i is "
                            "d_model x d_head: it reads the whole d_model-vector of a token. Side by side, the h "
                            "heads' matrices form one d_model x d_model matrix, so the count does not depend on h.")
        if got in (4 * d * d * h, 4 * d * d * h + 4 * d * h, 4 * d * d * h + 4 * d):
            raise Incorrect(f"you multiplied by the number of heads ({where}): the h heads share out one "
                            "d_model x d_model matrix per projection (d_head = d_model / h columns each), so more "
                            "heads do not mean more parameters.")
        raise Incorrect(f"the count is not right {where}. Four d_model x d_model matrices, plus a bias of "
                        "d_model numbers for each when bias=True.")


# ---- q4: the whole forward pass --------------------------------------------------------------------------------

def _ref_mha(x, w_q, w_k, w_v, w_o, h, scale_by=None, mix=False, project=True):
    B, T, d = x.shape
    dh = d // h

    def split(t):
        return t.reshape(B, h, T, dh) if mix else t.view(B, T, h, dh).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    s = q @ k.transpose(-2, -1) / math.sqrt(scale_by or dh)
    out = _ref_merge(torch.softmax(s, dim=-1) @ v)
    return out @ w_o if project else out


def _check_multi_head_attention(multi_head_attention) -> None:
    g = torch.Generator().manual_seed(9)
    for B, T, d, h in [(2, 5, 16, 4), (1, 6, 24, 3), (3, 4, 32, 8), (2, 7, 12, 2)]:
        x = torch.randn(B, T, d, generator=g, dtype=torch.float64)
        ws = [torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) * 2 for _ in range(4)]
        got = as_tensor(_run(multi_head_attention, x.clone(), *[w.clone() for w in ws], h))
        if tuple(got.shape) != (B, T, d):
            msg = f"wrong shape: expected {describe_shape((B, T, d), 'B T d_model')}, got {tuple(got.shape)}"
            if tuple(got.shape) == (B, h, T, d // h):
                msg += ": merge the heads back (transpose(1, 2), then reshape to (B, T, d_model)) and apply w_o."
            raise Incorrect(msg)
        want = _ref_mha(x, *ws, h)
        diagnose(got, want, [
            (_ref_mha(x, *ws, h, scale_by=d), f"you scaled the scores by sqrt(d_model) = sqrt({d}); each head "
                                              f"works in d_head = {d // h} dimensions, so divide by "
                                              f"sqrt(d_head) = {math.sqrt(d // h):.3g}."),
            (_ref_mha(x, *ws, h, project=False), "you forgot the output projection: multiply the merged heads "
                                                 "by w_o (concat(heads) @ w_o)."),
            (_ref_mha(x, *ws, 1, scale_by=d // h), "this is one head over all of d_model: split q, k and v into "
                                                   "h heads so that each head has its own attention weights."),
            (_ref_mha(x, *ws, 1), "this is one head over all of d_model (single-head attention): split q, k and v "
                                  "into h heads of d_head = d_model / h, attend in each, then merge."),
            (_ref_mha(x, *ws, h, mix=True), "heads are mixed up: you used view (or reshape) to (B, h, T, d_head) "
                                            "without a transpose. View as (B, T, h, d_head), then transpose(1, 2)."),
        ], f"the outputs (B={B}, T={T}, d_model={d}, h={h})")


EXERCISES = ExerciseSet("05", "Multi-head attention", [
    Question(
        key="q1", title="Grouped-query attention", answer="grouped_query_attention",
        checker=_check_grouped_query_attention,
        hints=["Each K/V head serves h // n_kv query heads in a row: `k.repeat_interleave(h // n_kv, dim=1)` "
               "turns (B, n_kv, T, d) into (B, h, T, d), K/V head 0 first for heads 0, 1, ..., and so on.",
               "Then it is ordinary attention in every head: `softmax(q @ k.transpose(-2, -1) / sqrt(d)) @ v`."],
        solution='''
def grouped_query_attention(q, k, v):
    group = q.shape[1] // k.shape[1]                      # query heads per K/V head
    k = k.repeat_interleave(group, dim=1)                 # (B, n_kv, T, d) -> (B, h, T, d)
    v = v.repeat_interleave(group, dim=1)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v
''',
        success="with n_kv = h it is ordinary multi-head attention, with n_kv = 1 it is multi-query attention; "
                "in between, the keys and values to store (notebook 09's cache) shrink by h / n_kv."),
    Question(
        key="q2", title="The parameters of grouped-query attention", answer="gqa_param_count",
        checker=_check_gqa_param_count,
        hints=["W_Q and W_O are d_model x d_model as before; W_K and W_V now produce only n_kv_heads heads of "
               "d_head = d_model // n_heads numbers: d_model x (n_kv_heads * d_head).",
               "With bias=True each projection has a bias as long as its output: d_model for W_Q and W_O, "
               "n_kv_heads * d_head for W_K and W_V."],
        solution='''
def gqa_param_count(d_model, n_heads, n_kv_heads, bias=True):
    kv = n_kv_heads * (d_model // n_heads)                # width of K and of V
    weights = 2 * d_model * d_model + 2 * d_model * kv     # W_Q, W_O + W_K, W_V
    biases = (2 * d_model + 2 * kv) if bias else 0
    return weights + biases
''',
        success="here, unlike in ordinary multi-head attention, the number of heads does change the count: fewer "
                "K/V heads, fewer parameters in W_K and W_V."),
    Question(
        key="q3", title="Count the parameters", answer="mha_param_count", checker=_check_mha_param_count,
        hints=["W_Q, W_K, W_V and W_O are each d_model x d_model, whatever the number of heads.",
               "With bias=True each projection also has a bias of d_model numbers."],
        solution='''
def mha_param_count(d_model, n_heads, bias=True):
    weights = 4 * d_model * d_model
    biases = 4 * d_model if bias else 0
    return weights + biases
''',
        success="4 d^2 + 4 d, and the number of heads does not appear: heads divide the work, not add weights."),
    Question(
        key="q4", title="Multi-head attention, forward pass", answer="multi_head_attention",
        checker=_check_multi_head_attention,
        hints=["Project (`x @ w_q` ...), split each of q, k, v into heads (view, then transpose(1, 2)), attend "
               "in every head at once with `softmax(q @ k.transpose(-2, -1) / sqrt(d_head)) @ v`.",
               "Merge the heads (transpose(1, 2), then reshape), then multiply by `w_o`. Scale by sqrt(d_head), "
               "not sqrt(d_model)."],
        solution='''
def multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, d = x.shape
    d_head = d // n_heads

    def split(t):
        return t.view(B, T, n_heads, d_head).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_head), dim=-1)
    heads = weights @ v                                   # (B, h, T, d_head)
    return heads.transpose(1, 2).reshape(B, T, d) @ w_o
''',
        success="that is the whole layer: project, split, attend per head, merge, project."),
])
