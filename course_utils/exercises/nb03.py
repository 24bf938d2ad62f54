"""Exercises for notebook 03 (self-attention): the gradient of softmax, attention weights, the whole operation,
temperature."""

from __future__ import annotations

import math

import torch

from .core import (
    ExerciseSet,
    Incorrect,
    Question,
    as_tensor,
    call,
    diagnose,
    expect_shape,
)

ATOL = 1e-5


def _softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.softmax(x.double(), dim=dim)





# ---- q1: the gradient of softmax, by hand ------------------------------------------------------------------

def _softmax_grad_autograd(s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    s = s.double().clone().requires_grad_(True)
    (torch.softmax(s, dim=-1) * g.double()).sum().backward()
    return s.grad


def _check_softmax_backward(softmax_backward) -> None:
    gen = torch.Generator().manual_seed(3)
    for shape in [(5,), (3, 6), (2, 4, 7), (4, 2)]:
        s = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2
        g = torch.randn(*shape, generator=gen, dtype=torch.float64)
        w = torch.softmax(s, dim=-1)
        got = expect_shape(call(softmax_backward, w.clone(), g.clone()), shape, "")
        want = _softmax_grad_autograd(s, g)
        inner = (g * w).sum(-1, keepdim=True)
        diagnose(got, want, [
            (w * g, "you kept only the direct path, dw_j/ds_j * g_j = w_j g_j: but every weight depends on every "
                    "score through the sum in the denominator. Subtract the weighted mean of g: "
                    "w * (g - (g * w).sum(-1, keepdim=True))."),
            (w * (1 - w) * g, "that is only the diagonal of the Jacobian, w_j (1 - w_j): the off-diagonal terms "
                              "-w_k w_j count too (raising s_j lowers every other weight)."),
            (g - inner, "you forgot to multiply by w_j: dL/ds_j = w_j (g_j - sum_k g_k w_k)."),
            (w * (g - (g * w).sum(0, keepdim=True)) if len(shape) > 1 else w * g,
             "the sum over k runs along the last dim (dim=-1, keepdim=True), the dim the softmax normalised."),
            (w * (g - g.sum(-1, keepdim=True)), "the term to subtract is the *weighted* sum of g, "
                                                "sum_k g_k w_k, not the plain sum of g."),
        ], "dL/ds")


# ---- q2: attention weights -------------------------------------------------------------------------------------

def _weight_cases():
    g = torch.Generator().manual_seed(7)
    for B, T, d in [(2, 5, 16), (1, 3, 64), (3, 6, 4), (2, 4, 100)]:
        yield torch.randn(B, T, d, generator=g), torch.randn(B, T, d, generator=g)


def _weight_suspects(q: torch.Tensor, k: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    q, k = q.double(), k.double()
    d = q.shape[-1]
    s = q @ k.transpose(-2, -1)
    return [
        (_softmax(s), f"forgot to divide by the square root of d: the scores q.k must be scaled by 1/sqrt(d) "
                      f"(here d={d}, so by 1/{math.sqrt(d):.3g}) before the softmax."),
        (_softmax(s / d), f"you divided by d={d}; divide by the square root of d (math.sqrt(d)) instead."),
        (_softmax(s / math.sqrt(d), dim=-2), "rows do not sum to 1 (your columns do): take the softmax over the "
                                            "keys, the last dim (dim=-1), so each query's weights sum to 1."),
        (_softmax(s / math.sqrt(d)).transpose(-2, -1),
         "your matrix is transposed: row i must hold query i's weights over the keys j; compute q @ k^T, not "
         "k @ q^T."),
        (s / math.sqrt(d), "these are the scaled scores; the weights are their softmax along the last dim."),
    ]


def _check_attention_weights(attention_weights) -> None:
    for q, k in _weight_cases():
        B, T, d = q.shape
        got = expect_shape(call(attention_weights, q.clone(), k.clone()), (B, T, T), "B T T",
                           known={(B, T, d): "that is the shape of q (B, T, d): the weights compare every query "
                                             "with every key, q @ k.transpose(-2, -1)",
                                  (B, d, d): "you multiplied q^T by k; you want q @ k.transpose(-2, -1)"})
        want = _softmax(q.double() @ k.double().transpose(-2, -1) / math.sqrt(d))
        diagnose(got, want, _weight_suspects(q, k), "the attention weights")


# ---- q3: the whole operation -----------------------------------------------------------------------------------

def _check_attend(attend) -> None:
    g = torch.Generator().manual_seed(11)
    for B, T, d, d_v in [(2, 5, 16, 8), (1, 4, 64, 3), (3, 7, 9, 9)]:
        q, k, v = (torch.randn(B, T, d, generator=g), torch.randn(B, T, d, generator=g),
                   torch.randn(B, T, d_v, generator=g))
        got = expect_shape(call(attend, q.clone(), k.clone(), v.clone()), (B, T, d_v), "B T d_v",
                           known={(B, T, T): "that is the shape of the weights (B, T, T): return weights @ v, the "
                                             "weighted average of the value vectors"})
        vd = v.double()
        want = _softmax(q.double() @ k.double().transpose(-2, -1) / math.sqrt(d)) @ vd
        suspects = [(w @ vd, msg) for w, msg in _weight_suspects(q, k)[:3]]
        suspects.append(((q.double() @ k.double().transpose(-2, -1) / math.sqrt(d)) @ vd,
                         "you multiplied the raw scores by v: take their softmax first, so that each output is "
                         "a weighted average of the values (weights between 0 and 1 that sum to 1)."))
        diagnose(got, want, suspects, "the outputs")


# ---- q4: temperature -------------------------------------------------------------------------------------------

def _check_softmax_with_temperature(softmax_with_temperature) -> None:
    scores = torch.tensor([1.2, 3.5, 0.8, 0.1, 2.4])
    g = torch.Generator().manual_seed(5)
    for x, tau in [(scores, 1.0), (scores, 2.0), (scores, 0.5), (torch.randn(3, 6, generator=g), 4.0),
                   (torch.randn(2, 5, generator=g) * 3, 0.25)]:
        got = expect_shape(call(softmax_with_temperature, x.clone(), tau), x.shape, "")
        want = _softmax(x.double() / tau)
        diagnose(got, want, [
            (_softmax(x.double() * tau), f"you multiplied by the temperature (tau={tau}); divide the scores by it: "
                                         "a high temperature must flatten the weights, a low one sharpen them."),
            (_softmax(x.double()), f"tau={tau} changed nothing: divide the scores by tau before the softmax."),
            (_softmax(x.double()) / tau, "divide the scores by tau *before* the softmax, not the weights after."),
        ], f"the weights at tau={tau}")
    got = as_tensor(call(softmax_with_temperature, scores * 100, 0.01))
    if not torch.isfinite(got).all():
        raise Incorrect("with scores * 100 and tau=0.01 your weights contain inf or NaN: subtract the maximum "
                        "before exp (or reuse your stable softmax).")


EXERCISES = ExerciseSet("03", "Self-attention", [
    Question(
        key="q1", title="The gradient of softmax, by hand", answer="softmax_backward",
        checker=_check_softmax_backward,
        hints=["By the chain rule, dL/ds_j = sum_k g_k w_k ([k = j] - w_j) = w_j g_j - w_j sum_k g_k w_k.",
               "In tensor form: `w * (g - (g * w).sum(dim=-1, keepdim=True))`; keepdim=True keeps the shapes "
               "broadcastable."],
        solution='''
def softmax_backward(w, g):
    return w * (g - (g * w).sum(dim=-1, keepdim=True))
''',
        success="that is exactly what autograd computes for a softmax; with a cross-entropy after it, g = "
                "-onehot(y) / w and the formula becomes softmax(s) - onehot(y), notebook 01's gradient."),
    Question(
        key="q2", title="Attention weights", answer="attention_weights", checker=_check_attention_weights,
        hints=["The scores are every query dotted with every key: `q @ k.transpose(-2, -1)`, shape (B, T, T).",
               "Divide by `math.sqrt(d)` where `d = q.shape[-1]`, then softmax over the last dim."],
        solution='''
def attention_weights(q, k):
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    return torch.softmax(scores, dim=-1)
''',
        success="row i says how much query i takes from each key; every row sums to 1."),
    Question(
        key="q3", title="The whole operation", answer="attend", checker=_check_attend,
        hints=["First the weights, as in q2, then the weighted average of the values: `weights @ v`.",
               "The output has one vector per query, of the size of the values: (B, T, d_v)."],
        solution='''
def attend(q, k, v):
    d = q.shape[-1]
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
    return weights @ v
''',
        success="that is softmax(QK^T / sqrt(d)) V, the line at the heart of every transformer."),
    Question(
        key="q4", title="Softmax with a temperature", answer="softmax_with_temperature",
        checker=_check_softmax_with_temperature,
        hints=["Divide the scores by tau, then take a (stable) softmax over the last dim.",
               "`torch.softmax(x / tau, dim=-1)` is stable already: PyTorch subtracts the max for you."],
        solution='''
def softmax_with_temperature(x, tau):
    return torch.softmax(x / tau, dim=-1)
''',
        success="dividing by sqrt(d) in attention is exactly a temperature of sqrt(d)."),
])
