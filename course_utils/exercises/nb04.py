"""Exercises for notebook 04 (causal masking): mask the future, causal attention, padding, a sliding window."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, expect_close, expect_shape

ATOL = 1e-5
NEG_INF = float("-inf")


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4,
                                                      equal_nan=True))



def _future(T: int) -> torch.Tensor:
    """(T, T) boolean, True strictly above the diagonal (key j > query i)."""
    return torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)


def _causal_out(q, k, v, scale=True):
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    s = s.masked_fill(_future(q.shape[-2]), NEG_INF)
    return torch.softmax(s, dim=-1) @ v


# ---- q1: mask the future ---------------------------------------------------------------------------------------

def _check_mask_future(mask_future) -> None:
    g = torch.Generator().manual_seed(1)
    for B, T in [(2, 5), (1, 1), (3, 7)]:
        scores = torch.randn(B, T, T, generator=g)
        got = expect_shape(call(mask_future, scores.clone()), (B, T, T), "B T T")
        future = _future(T).expand(B, T, T)
        if T > 1 and not torch.isinf(got[future]).any() and torch.isinf(got).any():
            if torch.isinf(got[:, 1:, 0]).all():
                raise Incorrect("you blocked the past (below the diagonal) instead of the future: query i may "
                                "look at keys j <= i, so set the entries with j > i (above the diagonal) to -inf.")
        if T > 1 and (got[future] == 0).all() and not torch.isinf(got).any():
            raise Incorrect("the future entries are 0, not -inf: exp(0) = 1, so after the softmax the future "
                            "would still get weight. Fill them with float('-inf').")
        if torch.isinf(torch.diagonal(got, dim1=-2, dim2=-1)).any():
            raise Incorrect("the diagonal is masked too: each position may look at itself (j = i); mask only "
                            "j > i, e.g. with torch.triu(..., diagonal=1).")
        blocked_ok = (got[future] < -1e4).all() if T > 1 else True
        if not blocked_ok:
            i, j = [int(t) for t in torch.nonzero(future[0] & ~(got[0] < -1e4))[0]]
            raise Incorrect(f"the future leaked into position {i}: the score of query {i} for key {j} > {i} is "
                            f"{got[0, i, j].item():.4g}; it should be -inf.")
        kept = ~future
        expect_close(got[kept], scores[kept], what="the scores you kept (j <= i)")


# ---- q2: causal attention --------------------------------------------------------------------------------------

def _check_causal_attention(causal_attention) -> None:
    g = torch.Generator().manual_seed(2)
    for B, T, d, d_v in [(2, 6, 16, 8), (1, 4, 64, 4), (3, 5, 8, 8)]:
        q, k, v = (torch.randn(B, T, d, generator=g), torch.randn(B, T, d, generator=g),
                   torch.randn(B, T, d_v, generator=g))
        got = expect_shape(call(causal_attention, q.clone(), k.clone(), v.clone()), (B, T, d_v), "B T d_v",
                           known={(B, T, T): "that is the shape of the weights (B, T, T); return weights @ v"})
        if torch.isnan(got).any():
            raise Incorrect("your output contains NaN: every row keeps at least its own position (the diagonal), "
                            "so no row should be fully masked. Mask only j > i.")
        want = _causal_out(q, k, v)
        if _close(got, want):
            continue
        qd, kd, vd = q.double(), k.double(), v.double()
        w_full = torch.softmax(qd @ kd.transpose(-2, -1) / math.sqrt(d), dim=-1)
        after = (w_full * (~_future(T))) @ vd
        if _close(got, after):
            raise Incorrect("rows do not sum to 1: you zeroed the future weights after the softmax. Mask the "
                            "scores with -inf before the softmax, so each row is re-normalised over the past.")
        if _close(got, _causal_out(q, k, v, scale=False)):
            raise Incorrect("forgot to divide by the square root of d: scale the scores by 1/sqrt(d) "
                            f"(d={d}) before masking and the softmax.")
        strict = qd @ kd.transpose(-2, -1) / math.sqrt(d)
        strict = strict.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), NEG_INF)
        if _close(torch.nan_to_num(got), torch.nan_to_num(torch.softmax(strict, -1) @ vd)):
            raise Incorrect("the diagonal is masked too: position i may attend to itself.")
        # the experiment of the notebook: change the future; earlier outputs must not move
        for j in range(T - 1, 0, -1):
            k2, v2 = k.clone(), v.clone()
            k2[:, j] += 3 * torch.randn(B, d, generator=g)
            v2[:, j] += 3 * torch.randn(B, d_v, generator=g)
            got2 = as_tensor(call(causal_attention, q.clone(), k2, v2))
            moved = (got2[:, :j] - got[:, :j]).abs().amax(dim=(0, 2)) > 1e-5
            if moved.any():
                i = int(torch.nonzero(moved)[0])
                raise Incorrect(f"the future leaked into position {i}: changing token {j} changed output {i}. "
                                "Set the scores with j > i to -inf before the softmax.")
        expect_close(got, want, what="the outputs")


# ---- q3: causal + padding mask ---------------------------------------------------------------------------------

def _ref_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    keys = torch.arange(T)[None, :] < lengths[:, None]                   # (B, T)
    return keys[:, None, :] & ~_future(T)                                # (B, T, T)


def _check_causal_padding_mask(causal_padding_mask) -> None:
    for lengths, T in [([5, 3, 1], 5), ([4, 4], 4), ([2, 6, 3, 1], 6)]:
        lengths = torch.tensor(lengths)
        B = len(lengths)
        got = expect_shape(call(causal_padding_mask, lengths.clone(), T), (B, T, T), "B T T",
                           known={(B, T): "that is the padding mask alone (B, T); broadcast it over the query dim and "
                                          "combine it with the causal mask: keys[:, None, :] & causal"})
        if got.dtype != torch.bool:
            raise Incorrect(f"the mask should be boolean (True = may attend), got dtype {got.dtype}; "
                            "compare with < or combine with & to get booleans")
        want = _ref_mask(lengths, T)
        if torch.equal(got, want):
            continue
        if torch.equal(got, ~want):
            raise Incorrect("your mask is inverted: in the course (and PyTorch) True means 'may attend', "
                            "False means 'blocked'.")
        causal_only = (~_future(T)).expand(B, T, T)
        if torch.equal(got, causal_only):
            b = int(torch.nonzero(lengths < T)[0])
            raise Incorrect(f"the padding is still visible: in sequence {b} (length {lengths[b].item()}) the "
                            f"padded keys j >= {lengths[b].item()} must be False.")
        future = _future(T).expand(B, T, T)
        if (got & future).any():
            b, i, j = [int(t) for t in torch.nonzero(got & future)[0]]
            raise Incorrect(f"the future leaked into position {i} (sequence {b}): key {j} > {i} is allowed; "
                            "combine the padding mask with the causal mask (&).")
        queries = torch.arange(T)[None, :] < lengths[:, None]
        if torch.equal(got, want & queries[:, :, None]):
            raise Incorrect("you also blocked the padded *query* rows: those rows have nothing to attend to "
                            "and their softmax gives NaN. Block the padded keys (columns) only; the outputs "
                            "at padded positions are simply ignored.")
        b, i, j = [int(t) for t in torch.nonzero(got != want)[0]]
        raise Incorrect(f"entry (sequence {b}, query {i}, key {j}) should be {bool(want[b, i, j])}: "
                        f"lengths {lengths.tolist()}, T={T}.")


# ---- q4: a sliding-window mask ----------------------------------------------------------------------------------

def _window(T: int, w: int, lo: int = 0) -> torch.Tensor:
    """(T, T) boolean, True where key j lies in the window of query i: i - w < j <= i (shifted by lo)."""
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j <= i) & (i - j < w + lo)


def _check_sliding_window_mask(sliding_window_mask) -> None:
    for T, w in [(6, 2), (5, 1), (8, 3), (4, 6), (7, 4)]:
        got = as_tensor(call(sliding_window_mask, T, w))
        expect_shape(got, (T, T), "T T")
        if got.dtype != torch.bool:
            raise Incorrect(f"the mask should be boolean (True = may attend), got dtype {got.dtype}: compare with "
                            "<, <= or combine with &, which give booleans.")
        want = _window(T, w)
        if torch.equal(got, want):
            continue
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        suspects = [
            ((j <= i), f"with T={T}, w={w} every query still sees the whole past: a window of w keeps only the w "
                       "most recent positions, i - w < j <= i (the query itself included)."),
            (_window(T, w, 1), f"your window holds w + 1 positions (T={T}, w={w}): query i should see keys "
                               "i - w + 1 ... i, that is w positions including itself (i - j < w, not <= w)."),
            (_window(T, w, -1), f"your window holds w - 1 positions (T={T}, w={w}): query i should see itself "
                                "and the w - 1 positions before it (i - j < w)."),
            ((i - j).abs() < w, "your window looks both ways: keys after the query are the future. Keep the causal "
                                "part too: j <= i as well as i - j < w."),
            (_window(T, w).T, "your mask is transposed: row i is the query, column j the key, and a query may "
                              "attend to keys j <= i."),
        ]
        for wrong, message in suspects:
            if torch.equal(got, wrong):
                raise Incorrect(message)
        qi, kj = [int(t) for t in torch.nonzero(got != want)[0]]
        raise Incorrect(f"T={T}, w={w}: entry (query {qi}, key {kj}) should be {bool(want[qi, kj])}.")


EXERCISES = ExerciseSet("04", "Causal masking", [
    Question(
        key="q1", title="Hide the future", answer="mask_future", checker=_check_mask_future,
        hints=["`torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)` is True exactly where j > i.",
               "`scores.masked_fill(future, float('-inf'))` writes -inf where the mask is True."],
        solution='''
def mask_future(scores):
    T = scores.shape[-1]
    future = torch.ones(T, T, dtype=torch.bool, device=scores.device).triu(diagonal=1)
    return scores.masked_fill(future, float("-inf"))
''',
        success="after the softmax those entries weigh exactly 0 and every row still sums to 1."),
    Question(
        key="q2", title="Causal self-attention", answer="causal_attention", checker=_check_causal_attention,
        hints=["Scores q @ k^T / sqrt(d), then -inf above the diagonal, then softmax over the last dim, then @ v.",
               "You can reuse mask_future from q1."],
        solution='''
def causal_attention(q, k, v):
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(diagonal=1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return weights @ v
''',
        success="no output can see a token to its right: that is what lets one sequence train T predictions."),
    Question(
        key="q3", title="Causal and padding together", answer="causal_padding_mask",
        checker=_check_causal_padding_mask,
        hints=["Real keys: `torch.arange(T)[None, :] < lengths[:, None]` has shape (B, T).",
               "Put it on the key axis with `[:, None, :]` (B, 1, T) and `&` it with the (T, T) causal mask."],
        solution='''
def causal_padding_mask(lengths, T):
    keys = torch.arange(T)[None, :] < lengths[:, None]            # (B, T): True at real tokens
    causal = torch.ones(T, T, dtype=torch.bool).tril()            # (T, T): True where j <= i
    return keys[:, None, :] & causal                              # (B, T, T)
''',
        success="one boolean tensor says both 'not the future' and 'not the padding'."),
    Question(
        key="q4", title="A sliding-window mask", answer="sliding_window_mask", checker=_check_sliding_window_mask,
        hints=["With `i = torch.arange(T)[:, None]` (queries, a column) and `j = torch.arange(T)[None, :]` (keys, a "
               "row), comparisons such as `j <= i` broadcast to a (T, T) boolean matrix.",
               "Two conditions, both needed: not the future (`j <= i`) and not too far back (`i - j < w`); "
               "combine them with `&`."],
        solution='''
def sliding_window_mask(T, w):
    i = torch.arange(T)[:, None]      # queries, (T, 1)
    j = torch.arange(T)[None, :]      # keys, (1, T)
    return (j <= i) & (i - j < w)     # (T, T): the past, at most w positions back (itself included)
''',
        success="each row now has at most w True entries: the score matrix costs T * w instead of T * T, and "
                "stacked layers still pass information further back, w - 1 positions per layer."),
])
