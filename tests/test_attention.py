"""Unit tests of course_utils.attention: every hand-built piece equals PyTorch's own, and bad input is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.attention import MultiHeadAttention, attention, causal_mask, padding_mask, softmax
from course_utils.errors import ShapeError

TOL = 1e-6


def _qkv(B=3, h=2, T=7, d=16, d_v=None, seed=0, T_k=None):
    g = torch.Generator().manual_seed(seed)
    T_k = T if T_k is None else T_k
    d_v = d if d_v is None else d_v
    q = torch.randn(B, h, T, d, generator=g)
    k = torch.randn(B, h, T_k, d, generator=g)
    v = torch.randn(B, h, T_k, d_v, generator=g)
    return q, k, v


# ---- softmax ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,dim", [((5,), -1), ((4, 9), -1), ((3, 4, 6), 1), ((2, 3, 4, 5), 0)])
def test_softmax_equals_torch(shape, dim):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 3
    assert (softmax(x, dim=dim) - torch.softmax(x, dim=dim)).abs().max() < TOL


def test_softmax_large_values_do_not_overflow():
    x = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0], [88.0, 89.0, 3e4]])
    got = softmax(x)
    assert torch.isfinite(got).all()
    assert (got - torch.softmax(x, dim=-1)).abs().max() < TOL
    assert torch.allclose(got.sum(-1), torch.ones(3))
    naive = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)      # what the max-subtraction prevents
    assert torch.isnan(naive).any()


def test_softmax_minus_inf_gets_zero_weight():
    x = torch.tensor([[0.5, float("-inf"), 2.0, float("-inf")], [float("-inf"), 3.0, float("-inf"), 1.0]])
    got = softmax(x)
    assert (got - torch.softmax(x, dim=-1)).abs().max() < TOL
    assert (got[torch.isinf(x)] == 0).all()


def test_softmax_all_minus_inf_row_is_nan_like_torch():
    x = torch.tensor([[float("-inf")] * 3, [0.0, 1.0, 2.0]])
    got = softmax(x)
    assert torch.isnan(got[0]).all() and torch.isnan(torch.softmax(x, -1)[0]).all()
    assert (got[1] - torch.softmax(x[1], -1)).abs().max() < TOL


# ---- masks -----------------------------------------------------------------------------------------------------

def test_causal_mask_is_lower_triangular():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))


@pytest.mark.parametrize("T,offset", [(1, 0), (1, 5), (3, 2), (4, 4)])
def test_causal_mask_with_offset(T, offset):
    m = causal_mask(T, offset=offset)
    assert m.shape == (T, T + offset)
    for i in range(T):
        for j in range(T + offset):
            assert bool(m[i, j]) == (j <= i + offset)


def test_causal_mask_equals_last_rows_of_full_mask():
    full = causal_mask(6)
    assert torch.equal(causal_mask(2, offset=4), full[4:])


@pytest.mark.parametrize("T,offset", [(0, 0), (3, -1)])
def test_causal_mask_rejects_bad_sizes(T, offset):
    with pytest.raises(ValueError, match="T >= 1 and offset >= 0"):
        causal_mask(T, offset=offset)


def test_padding_mask():
    m = padding_mask(torch.tensor([3, 1, 0, 5]), 5)
    assert m.shape == (4, 5) and m.dtype == torch.bool
    assert m.sum(1).tolist() == [3, 1, 0, 5]
    assert m[0].tolist() == [True, True, True, False, False]
    assert padding_mask([2, 2], 2).all()


def test_padding_mask_errors():
    with pytest.raises(ShapeError, match=r"\(B\)"):
        padding_mask(torch.tensor([[1, 2]]), 3)
    with pytest.raises(ValueError, match="between 0 and T=3"):
        padding_mask(torch.tensor([1, 4]), 3)
    with pytest.raises(ValueError, match="between 0 and T=3"):
        padding_mask(torch.tensor([-1, 2]), 3)


# ---- attention -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [dict(B=2, h=1, T=5, d=8), dict(B=4, h=3, T=11, d=32),
                                   dict(B=1, h=2, T=6, d=16, T_k=9, d_v=5)])
def test_attention_equals_sdpa(seed, shape):
    q, k, v = _qkv(seed=seed, **shape)
    out, w = attention(q, k, v)
    ref = F.scaled_dot_product_attention(q, k, v)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert (out - ref).abs().max() < TOL
    assert w.shape == q.shape[:-1] + (k.shape[-2],)
    assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6)


def test_attention_weights_equal_torch_softmax_of_scaled_scores():
    q, k, v = _qkv(seed=3)
    _, w = attention(q, k, v)
    ref = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    assert (w - ref).abs().max() < TOL


@pytest.mark.parametrize("seed", range(3))
def test_attention_causal_equals_sdpa_is_causal(seed):
    q, k, v = _qkv(B=3, h=4, T=10, d=16, seed=seed)
    out, w = attention(q, k, v, mask=causal_mask(10))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out - ref).abs().max() < TOL
    assert (w.triu(diagonal=1) == 0).all()


def test_attention_padding_and_causal_mask_equals_sdpa():
    B, h, T, d = 3, 2, 8, 16
    q, k, v = _qkv(B=B, h=h, T=T, d=d, seed=5)
    keep = padding_mask(torch.tensor([8, 5, 2]), T)[:, None, None, :] & causal_mask(T)    # (B, 1, T, T)
    out, w = attention(q, k, v, mask=keep)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert (out - ref).abs().max() < TOL
    assert (w[~keep.expand_as(w)] == 0).all()


def test_attention_random_mask_equals_sdpa():
    q, k, v = _qkv(B=2, h=3, T=6, d=8, seed=9)
    mask = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5
    mask |= torch.eye(6, dtype=torch.bool)                            # no row fully blocked
    out, _ = attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (out - ref).abs().max() < TOL


def test_attention_custom_scale_equals_sdpa():
    q, k, v = _qkv(seed=2)
    out, _ = attention(q, k, v, scale=0.3)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert (out - ref).abs().max() < TOL


def test_attention_fully_masked_row_gives_nan():
    q, k, v = _qkv(B=1, h=1, T=3, d=4)
    mask = torch.tensor([[False, False, False], [True, False, False], [True, True, True]])
    out, w = attention(q, k, v, mask=mask)
    assert torch.isnan(out[..., 0, :]).all() and torch.isfinite(out[..., 1:, :]).all()


def test_attention_gradients_equal_sdpa():
    q, k, v = (t.requires_grad_() for t in _qkv(B=2, h=2, T=5, d=8, seed=4))
    attention(q, k, v, mask=causal_mask(5))[0].square().sum().backward()
    mine = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    for a, t in zip(mine, (q, k, v), strict=True):
        assert (a - t.grad).abs().max() < 1e-5


def test_attention_shape_errors_name_the_expected_shape():
    q, k, v = _qkv(B=2, h=1, T=4, d=8)
    with pytest.raises(ShapeError, match=r"\(\.\.\., T, d\)"):
        attention(q[0, 0, 0], k, v)                        # 1-D q
    with pytest.raises(ShapeError, match=r"\(\.\.\., T, d\)"):
        attention(q, k[0], v)                              # k has fewer dims
    with pytest.raises(ShapeError, match=r"same last dim d.*\(\.\.\., T_q, 8\).*\(\.\.\., T_k, 6\)"):
        attention(q, k[..., :6], v)
    with pytest.raises(ShapeError, match="same number of positions T_k"):
        attention(q, k, v[..., :3, :])
    with pytest.raises(ShapeError, match=r"\(\.\.\., T_q, T_k\) = \(2, 1, 4, 4\)"):
        attention(q, k, v, mask=torch.ones(3, 3, dtype=torch.bool))


def test_attention_rejects_non_boolean_mask():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="boolean"):
        attention(q, k, v, mask=torch.ones(7, 7))


# ---- multi-head attention --------------------------------------------------------------------------------------

def _mha_pair(d_model=32, n_heads=4, bias=True, seed=0):
    torch.manual_seed(seed)
    mine = MultiHeadAttention(d_model, n_heads, bias=bias).eval()
    ref = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mine.w_q.weight, mine.w_k.weight, mine.w_v.weight]))
        ref.out_proj.weight.copy_(mine.w_o.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([mine.w_q.bias, mine.w_k.bias, mine.w_v.bias]))
            ref.out_proj.bias.copy_(mine.w_o.bias)
    return mine, ref


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n_heads", [1, 4])
def test_mha_equals_nn_multiheadattention(bias, n_heads):
    mine, ref = _mha_pair(n_heads=n_heads, bias=bias)
    x = torch.randn(3, 9, 32)
    with torch.no_grad():
        want, _ = ref(x, x, x, need_weights=False)
        assert (mine(x) - want).abs().max() < 1e-5


def test_mha_causal_equals_nn_multiheadattention():
    mine, ref = _mha_pair(seed=1)
    x = torch.randn(2, 12, 32)
    blocked = ~causal_mask(12)                  # nn.MultiheadAttention's bool mask: True = blocked
    with torch.no_grad():
        want, _ = ref(x, x, x, attn_mask=blocked, need_weights=False)
        assert (mine(x, causal=True) - want).abs().max() < 1e-5
        assert (mine(x, mask=causal_mask(12)) - want).abs().max() < 1e-5


def test_mha_padding_mask_equals_nn_multiheadattention():
    mine, ref = _mha_pair(seed=2)
    x = torch.randn(3, 6, 32)
    keep = padding_mask(torch.tensor([6, 4, 1]), 6)                     # (B, T)
    with torch.no_grad():
        want, _ = ref(x, x, x, key_padding_mask=~keep, need_weights=False)
        got = mine(x, mask=keep[:, None, None, :])
        assert (got - want).abs().max() < 1e-5


@pytest.mark.parametrize("causal", [False, True])
def test_mha_fast_equals_hand_built(causal):
    mine, _ = _mha_pair(seed=3)
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        slow = mine(x, causal=causal)
        mine.fast = True
        fast = mine(x, causal=causal)
        keep = padding_mask(torch.tensor([10, 7]), 10)[:, None, None, :]
        fast_masked = mine(x, mask=keep, causal=causal)
        mine.fast = False
        slow_masked = mine(x, mask=keep, causal=causal)
    assert (slow - fast).abs().max() < 1e-5
    assert (slow_masked - fast_masked).abs().max() < 1e-5


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("chunks", [[1] * 8, [3, 1, 4]])
def test_mha_kv_cache_equals_full_causal_forward(fast, chunks):
    mine, _ = _mha_pair(seed=4)
    mine.fast = fast
    x = torch.randn(2, sum(chunks), 32)
    with torch.no_grad():
        full = mine(x, causal=True)
        cache: dict = {}
        pieces, start = [], 0
        for n in chunks:
            pieces.append(mine(x[:, start:start + n], causal=True, cache=cache))
            start += n
    assert cache["k"].shape == (2, 4, sum(chunks), 8)
    assert (torch.cat(pieces, dim=1) - full).abs().max() < 1e-5


def test_mha_keep_weights():
    mine, _ = _mha_pair(seed=5)
    mine.keep_weights = True
    x = torch.randn(2, 5, 32)
    mine(x, causal=True)
    w = mine.last_weights
    assert w.shape == (2, 4, 5, 5)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 5), atol=1e-6)
    assert (w.triu(diagonal=1) == 0).all()


def test_mha_split_merge_roundtrip():
    mine = MultiHeadAttention(24, 3)
    x = torch.randn(2, 5, 24)
    assert mine.split_heads(x).shape == (2, 3, 5, 8)
    assert torch.equal(mine.merge_heads(mine.split_heads(x)), x)


def test_mha_dropout_only_in_training():
    torch.manual_seed(0)
    mine = MultiHeadAttention(16, 2, dropout=0.5)
    x = torch.randn(2, 6, 16)
    mine.eval()
    assert torch.equal(mine(x), mine(x))
    mine.train()
    assert not torch.equal(mine(x), mine(x))


def test_mha_errors_name_the_expected_shape():
    mine = MultiHeadAttention(32, 4)
    with pytest.raises(ShapeError, match=r"\(B, T, 32\).*got \(2, 5, 16\)"):
        mine(torch.randn(2, 5, 16))
    with pytest.raises(ShapeError, match=r"\(B, T, 32\)"):
        mine(torch.randn(5, 32))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)


# ---- the notebooks' attention pictures (course_utils.plots / widgets) ------------------------------------------

def test_plot_attention_labels_and_errors():
    import matplotlib.pyplot as plt

    from course_utils.plots import plot_attention

    w = softmax(torch.randn(3, 4))
    fig, ax = plt.subplots()
    im = plot_attention(w, ["a", "b", "c"], title="T", ax=ax, key_labels=["w", "x", "y", "z"], vmax=1)
    assert ax.get_title() == "T" and "query" in ax.get_ylabel() and "key" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert im.get_array().shape == (3, 4)
    with pytest.raises(ValueError, match=r"\(T_q, T_k\) = \(3, 3\).*got \(3, 4\)"):
        plot_attention(w, ["a", "b", "c"])
    plt.close("all")


def test_softmax_explorer_reacts_to_its_sliders():
    import matplotlib.pyplot as plt

    from course_utils.widgets import softmax_explorer

    box = softmax_explorer([1.2, 3.5, 0.8], ["The", "cat", "sat"], values=[[0, 1], [2, 2], [1, 0]], query="'sat'")
    tau, which, score = box.children[0].children
    assert which.value == "cat" and score.value == 3.5
    tau.value = 2.0
    which.value = "sat"
    assert score.value == pytest.approx(0.8)
    score.value = 5.0
    with pytest.raises(ValueError, match="one label per score"):
        softmax_explorer([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match=r"\(n, 2\) = \(2, 2\)"):
        softmax_explorer([1.0, 2.0], ["a", "b"], values=[[1.0, 2.0, 3.0]] * 2)
    plt.close("all")
