"""Exercises for notebook 07 (the transformer block): RMSNorm, the feed-forward network, the pre-norm block,
and the parameter count of one block."""

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


# ---- q2: the feed-forward network -----------------------------------------------------------------------------

def _check_feed_forward(feed_forward) -> None:
    g = torch.Generator().manual_seed(8)
    for B, T, d in [(2, 3, 8), (1, 5, 4), (3, 2, 6)]:
        x = torch.randn(B, T, d, generator=g)
        W1, b1 = torch.randn(d, 4 * d, generator=g), torch.randn(4 * d, generator=g)
        W2, b2 = torch.randn(4 * d, d, generator=g), torch.randn(d, generator=g)
        out = call(feed_forward, x.clone(), W1.clone(), b1.clone(), W2.clone(), b2.clone())
        t = as_tensor(out)
        if tuple(t.shape) == (B, T, 4 * d):
            raise Incorrect(f"wrong shape: got (B, T, 4d) = {tuple(t.shape)}; that is the hidden layer. "
                            "Project it back to d with W2 (and add b2).")
        got = _shaped(t, (B, T, d))
        want = F.gelu(x @ W1 + b1) @ W2 + b2
        if _close(got, want):
            continue
        if _close(got, torch.relu(x @ W1 + b1) @ W2 + b2):
            raise Incorrect("you used ReLU; the course's block (like GPT-2) uses GELU: F.gelu(x @ W1 + b1).")
        if _close(got, (x @ W1 + b1) @ W2 + b2):
            raise Incorrect("the activation is missing: without it the two layers collapse into one linear map "
                            "x (W1 W2) + const. Apply F.gelu to the hidden layer.")
        if _close(got, F.gelu((x @ W1 + b1) @ W2 + b2)):
            raise Incorrect("the GELU is applied after the second layer; it belongs between the two: "
                            "F.gelu(x @ W1 + b1) @ W2 + b2.")
        if _close(got, F.gelu(x @ W1) @ W2) or _close(got, F.gelu(x @ W1 + b1) @ W2) or \
                _close(got, F.gelu(x @ W1) @ W2 + b2):
            raise Incorrect("a bias is missing: add b1 after the first product and b2 after the second.")
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


def _check_pre_norm_block(pre_norm_block) -> None:
    for B, T, d, seed in [(2, 5, 8, 1), (1, 3, 16, 2), (3, 4, 4, 3)]:
        ln1, attn, ln2, ffn = _parts(d, seed)
        x = torch.randn(B, T, d, generator=torch.Generator().manual_seed(seed + 10)) * 2
        got = _shaped(call(pre_norm_block, x.clone(), ln1, attn, ln2, ffn), (B, T, d))
        h = x + attn(ln1(x))
        want = h + ffn(ln2(h))
        if _close(got, want):
            continue
        post = ln1(x + attn(x))
        if _close(got, ln2(post + ffn(post))):
            raise Incorrect("that is the post-norm block of the original 2017 paper, LN(x + f(x)). The pre-norm "
                            "block normalises the *input* of each sublayer and adds the raw x: "
                            "h = x + attn(ln1(x)); out = h + ffn(ln2(h)).")
        a = attn(ln1(x))
        if _close(got, ffn(ln2(a))):
            raise Incorrect("the residual connections are missing: add the sublayer's input back, "
                            "h = x + attn(ln1(x)), then h + ffn(ln2(h)).")
        if _close(got, ffn(ln2(h))):
            raise Incorrect("the second residual is missing: return h + ffn(ln2(h)), not ffn(ln2(h)).")
        if _close(got, x + a + ffn(ln2(x))):
            raise Incorrect("the feed-forward sees ln2(x), the block's input: it should see h = x + attn(ln1(x)), "
                            "the output of the attention step (the two sublayers run one after the other).")
        if _close(got, h + ffn(ln1(h))) or _close(got, x + attn(ln2(x)) + ffn(ln1(x + attn(ln2(x))))):
            raise Incorrect("the two LayerNorms are swapped or shared: ln1 goes before attn, ln2 before ffn.")
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
        key="q2", title="The feed-forward network", answer="feed_forward", checker=_check_feed_forward,
        hints=["x is (B, T, d), W1 is (d, 4d): x @ W1 + b1 is the (B, T, 4d) hidden layer.",
               "GELU on the hidden layer, then @ W2 + b2 brings it back to (B, T, d)."],
        solution='''
def feed_forward(x, W1, b1, W2, b2):
    hidden = F.gelu(x @ W1 + b1)          # (B, T, 4d)
    return hidden @ W2 + b2               # (B, T, d)
''',
        success="the same two-layer network runs at every position, independently: attention mixes positions, "
                "the feed-forward transforms each one."),
    Question(
        key="q3", title="The pre-norm block", answer="pre_norm_block", checker=_check_pre_norm_block,
        hints=["Two steps, each 'x plus a sublayer of the normalised x'.",
               "h = x + attn(ln1(x)); then return h + ffn(ln2(h))."],
        solution='''
def pre_norm_block(x, ln1, attn, ln2, ffn):
    h = x + attn(ln1(x))
    return h + ffn(ln2(h))
''',
        success="the residual stream x flows through untouched; each sublayer only adds to it."),
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
