"""Exercises for notebook 07 (the transformer block): RMSNorm, the SwiGLU feed-forward network, the post-norm block
of the 2017 paper, and the parameter count of one block."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, expect_close, expect_number

ATOL = 1e-5


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4))


def _shaped(value, shape) -> torch.Tensor:
    t = as_tensor(value)
    if tuple(t.shape) != tuple(shape):
        raise Incorrect(f"wrong shape: expected {tuple(shape)} (the same shape as x), got {tuple(t.shape)}")
    return t


# ---- q1: RMSNorm, layer norm's lighter cousin ---------------------------------------------------------------------

def _rms_ref(x, gamma, eps=1e-6):
    return x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps) * gamma


def _check_rms_norm(rms_norm) -> None:
    g = torch.Generator().manual_seed(7)
    for shape in [(4, 8), (2, 3, 16), (5, 6)]:
        d = shape[-1]
        x = torch.randn(*shape, generator=g) * 3 + 1
        gamma = torch.randn(d, generator=g)
        got = _shaped(call(rms_norm, x.clone(), gamma.clone()), shape)
        want = _rms_ref(x, gamma)
        if _close(got, want):
            continue
        if _close(got, _ln_ref(x, gamma, torch.zeros(d), 1e-6)):
            raise Incorrect("you subtracted the mean: that is LayerNorm. RMSNorm only divides by the root mean "
                            "square, sqrt(mean(x**2) + eps), and keeps the mean.")
        if _close(got, _rms_ref(x, torch.ones(d))):
            raise Incorrect("the normalisation is right, but gamma is missing: multiply by gamma at the end.")
        if _close(got, x / torch.sqrt((x ** 2).sum(-1, keepdim=True) + 1e-6) * gamma):
            raise Incorrect("you divided by the root of the *sum* of squares (the vector's length); RMSNorm uses the "
                            "*mean* of the squares: (x**2).mean(dim=-1, keepdim=True).")
        if x.dim() == 2 and _close(got, x / torch.sqrt((x ** 2).mean(0) + 1e-6) * gamma):
            raise Incorrect("you averaged over the batch (dim 0): normalise each vector over its own features, the "
                            "last dim (dim=-1, keepdim=True).")
        expect_close(got, want, what="the normalised values", atol=1e-4)
    x = torch.zeros(2, 8)
    got = as_tensor(call(rms_norm, x, torch.ones(8)))
    if not torch.isfinite(got).all():
        raise Incorrect("an all-zero vector gives NaN (0/0): add eps inside the square root, "
                        "sqrt(mean(x**2) + eps).")


def _ln_ref(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


# ---- q2: the SwiGLU feed-forward network -------------------------------------------------------------------------

def _check_swiglu(swiglu) -> None:
    g = torch.Generator().manual_seed(8)
    for B, T, d, hidden in [(2, 3, 8, 12), (1, 5, 4, 10), (3, 2, 6, 16)]:
        x = torch.randn(B, T, d, generator=g)
        W_gate, W_up = torch.randn(d, hidden, generator=g), torch.randn(d, hidden, generator=g)
        W_down = torch.randn(hidden, d, generator=g) / hidden ** 0.5
        t = as_tensor(call(swiglu, x.clone(), W_gate.clone(), W_up.clone(), W_down.clone()))
        if tuple(t.shape) == (B, T, hidden):
            raise Incorrect(f"wrong shape: got (B, T, hidden) = {tuple(t.shape)}; that is the gated hidden layer. "
                            "Project it back to d with W_down.")
        got = _shaped(t, (B, T, d))
        gate, up = x @ W_gate, x @ W_up
        want = (F.silu(gate) * up) @ W_down
        if _close(got, want):
            continue
        suspects = [
            ((F.silu(up) * gate) @ W_down, "the SiLU goes on the gate branch, x @ W_gate, and the other branch "
                                           "x @ W_up stays linear: (silu(x @ W_gate) * (x @ W_up)) @ W_down."),
            ((F.gelu(gate) * up) @ W_down, "you used GELU; SwiGLU's gate uses SiLU (swish), x * sigmoid(x): "
                                           "F.silu(x @ W_gate)."),
            ((torch.sigmoid(gate) * up) @ W_down, "sigmoid(x @ W_gate) is the gate of GLU; SwiGLU uses SiLU, "
                                                  "x * sigmoid(x): F.silu(x @ W_gate)."),
            ((F.silu(gate) + up) @ W_down, "the two branches are multiplied element by element, not added: the "
                                           "gate decides how much of each hidden unit of x @ W_up passes."),
            (F.silu(gate) @ W_down, "the up branch is missing: multiply the gate by x @ W_up before W_down."),
            (F.silu(gate * up) @ W_down, "the SiLU applies to the gate branch alone, before the product: "
                                         "silu(x @ W_gate) * (x @ W_up)."),
        ]
        for wrong, message in suspects:
            if _close(got, wrong):
                raise Incorrect(message)
        expect_close(got, want, what="the outputs", atol=1e-4)


# ---- q3: the pre-norm block -----------------------------------------------------------------------------------

def _parts(d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    Wa, Wf = torch.randn(d, d, generator=g) / d ** 0.5, torch.randn(d, d, generator=g) / d ** 0.5
    ln1_g, ln2_g = 1 + 0.5 * torch.randn(d, generator=g), 1 + 0.5 * torch.randn(d, generator=g)

    def ln1(x):
        return F.layer_norm(x, (d,)) * ln1_g

    def ln2(x):
        return F.layer_norm(x, (d,)) * ln2_g + 0.3

    def attn(x):          # a stand-in for causal attention: mixes each position with the running mean
        csum = x.cumsum(dim=1) / torch.arange(1, x.shape[1] + 1)[None, :, None]
        return torch.tanh(csum @ Wa)

    def ffn(x):
        return F.gelu(x @ Wf) * 1.5

    return ln1, attn, ln2, ffn


def _check_post_norm_block(post_norm_block) -> None:
    for B, T, d, seed in [(2, 5, 8, 1), (1, 3, 16, 2), (3, 4, 4, 3)]:
        ln1, attn, ln2, ffn = _parts(d, seed)
        x = torch.randn(B, T, d, generator=torch.Generator().manual_seed(seed + 10)) * 2
        got = _shaped(call(post_norm_block, x.clone(), ln1, attn, ln2, ffn), (B, T, d))
        h = ln1(x + attn(x))
        want = ln2(h + ffn(h))
        if _close(got, want):
            continue
        pre = x + attn(ln1(x))
        if _close(got, pre + ffn(ln2(pre))):
            raise Incorrect("that is the pre-norm block of section 3 (the course's). Post-norm normalises *after* "
                            "each addition: h = ln1(x + attn(x)); out = ln2(h + ffn(h)).")
        if _close(got, h + ffn(h)):
            raise Incorrect("the second LayerNorm is missing: post-norm normalises after every addition, "
                            "ln2(h + ffn(h)).")
        if _close(got, ln2(ffn(ln1(attn(x))))) or _close(got, ln2(ffn(h))):
            raise Incorrect("the residual connections are missing: add each sublayer's input to its output "
                            "before normalising, ln1(x + attn(x)).")
        swapped = ln2(x + attn(x))
        if _close(got, ln1(swapped + ffn(swapped))):
            raise Incorrect("the two LayerNorms are swapped: ln1 follows the attention step, ln2 the "
                            "feed-forward step.")
        if _close(got, ln2(x + attn(x) + ffn(x))):
            raise Incorrect("the feed-forward sees x, the block's input: it should see h = ln1(x + attn(x)), the "
                            "output of the attention step (the two sublayers run one after the other).")
        expect_close(got, want, what="the block's outputs", atol=1e-4)


# ---- q4: parameters per block ----------------------------------------------------------------------------------

def _check_block_params(block_params) -> None:
    for d in [8, 64, 128, 768]:
        got = call(block_params, d)
        want = 12 * d * d + 13 * d
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if got == want:
            continue
        if got == 12 * d * d:
            raise Incorrect(f"for d={d} you gave 12 d^2 = {got}: that counts the weight matrices only. Add the "
                            "biases (4 d in attention, 4 d + d in the feed-forward) and the two LayerNorms "
                            "(a gain and a shift each: 4 d).")
        if got == 12 * d * d + 9 * d:
            raise Incorrect(f"for d={d} you gave {got} = 12 d^2 + 9 d: the two LayerNorms are missing "
                            "(gamma and beta, d each, twice: 4 d).")
        if got == 12 * d * d + 4 * d:
            raise Incorrect(f"for d={d} you gave {got} = 12 d^2 + 4 d: the biases are missing (4 d in the attention "
                            "projections, 4 d + d in the feed-forward).")
        if got in (6 * d * d + 10 * d, 6 * d * d + 6 * d, 6 * d * d):
            raise Incorrect(f"for d={d} you gave {got}: the feed-forward is 4 times wider than d, so each of its "
                            "two matrices has 4 d^2 weights (8 d^2 in all), not d^2.")
        if got in (4 * d * d + 4 * d, 8 * d * d + 5 * d):
            raise Incorrect(f"for d={d} you gave {got}: that is only one of the two sublayers; count the attention "
                            "(4 d^2 + 4 d), the feed-forward (8 d^2 + 5 d) and two LayerNorms (4 d).")
        expect_number(got, want, what=f"the parameter count for d={d}", rel=0, abs_tol=0.5)


EXERCISES = ExerciseSet("07", "The transformer block", [
    Question(
        key="q1", title="RMSNorm from scratch", answer="rms_norm", checker=_check_rms_norm,
        hints=["The root mean square of each vector: torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + eps), "
               "shape (..., 1).",
               "Divide x by it and multiply by gamma. No mean is subtracted and there is no beta."],
        solution='''
def rms_norm(x, gamma, eps=1e-6):
    rms = torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + eps)
    return x / rms * gamma
''',
        success="RMSNorm (used by LLaMA and most recent models) is LayerNorm without the centring and the shift: "
                "fewer operations, about the same effect."),
    Question(
        key="q2", title="The SwiGLU feed-forward network", answer="swiglu", checker=_check_swiglu,
        hints=["Two branches from the same x: the gate `F.silu(x @ W_gate)` and the value `x @ W_up`, both "
               "(B, T, hidden).",
               "Multiply them element by element, then project back: `(gate * up) @ W_down`."],
        solution='''
def swiglu(x, W_gate, W_up, W_down):
    gate = F.silu(x @ W_gate)             # (B, T, hidden): silu(z) = z * sigmoid(z)
    up = x @ W_up                         # (B, T, hidden)
    return (gate * up) @ W_down           # (B, T, d)
''',
        success="three matrices instead of two: LLaMA-style models shrink the hidden width to about 8d/3 so "
                "that the parameter count stays near the 4d GELU network's 8d^2."),
    Question(
        key="q3", title="The post-norm block", answer="post_norm_block", checker=_check_post_norm_block,
        hints=["Post-norm: add first, then normalise the sum. Two steps, each LN(input + sublayer(input)).",
               "h = ln1(x + attn(x)); then return ln2(h + ffn(h))."],
        solution='''
def post_norm_block(x, ln1, attn, ln2, ffn):
    h = ln1(x + attn(x))
    return ln2(h + ffn(h))
''',
        success="the 2017 block: every output is normalised, so no raw residual stream runs through the stack; "
                "section 4's measurement shows what that does to the gradients of a deep stack."),
    Question(
        key="q4", title="Parameters per block", answer="block_params", checker=_check_block_params,
        hints=["Attention: four d x d matrices W_Q, W_K, W_V, W_O, each with a bias of d.",
               "Feed-forward: W1 is d x 4d (bias 4d), W2 is 4d x d (bias d). Each LayerNorm has gamma and beta "
               "(d each), and there are two."],
        solution='''
def block_params(d):
    attention = 4 * d * d + 4 * d
    ffn = d * 4 * d + 4 * d + 4 * d * d + d
    norms = 2 * 2 * d
    return attention + ffn + norms
''',
        success="12 d^2 + 13 d: for d = 768 (GPT-2 small) that is 7,087,872 per block, 85 million for 12 blocks."),
])
