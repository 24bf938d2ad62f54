"""course_utils.positional: the sinusoidal formula, permutation symmetry and how positions break it, RoPE."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.attention import attention
from course_utils.errors import ShapeError
from course_utils.positional import (
    LearnedPositionalEmbedding,
    apply_rope,
    rope_angles,
    rope_frequencies,
    sinusoidal_encoding,
)


def test_sinusoidal_formula_values():
    T, d = 7, 6
    pe = sinusoidal_encoding(T, d, dtype=torch.float64)
    assert pe.shape == (T, d) and pe.dtype == torch.float64
    for p in range(T):
        for i in range(d // 2):
            omega = 10000 ** (-2 * i / d)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(p * omega), abs=1e-12)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(p * omega), abs=1e-12)
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0] * 3, dtype=torch.float64))   # sin 0 = 0, cos 0 = 1


def test_sinusoidal_rows_have_constant_norm_and_odd_d():
    pe = sinusoidal_encoding(50, 16)
    assert torch.allclose(pe.norm(dim=-1), torch.full((50,), math.sqrt(8.0)), atol=1e-5)
    odd = sinusoidal_encoding(5, 7, dtype=torch.float64)
    assert odd.shape == (5, 7)
    assert torch.allclose(odd, sinusoidal_encoding(5, 8, dtype=torch.float64)[:, :7])


def test_sinusoidal_dot_product_depends_on_distance_only():
    pe = sinusoidal_encoding(40, 32, dtype=torch.float64)
    gram = pe @ pe.T
    for k in range(5):
        diag = torch.diagonal(gram, offset=k)
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-9)


def test_sinusoidal_errors():
    with pytest.raises(ValueError, match="T"):
        sinusoidal_encoding(0, 8)
    with pytest.raises(ValueError, match="d"):
        sinusoidal_encoding(4, 2.5)
    with pytest.raises(ValueError, match="base"):
        sinusoidal_encoding(4, 8, base=1.0)


def _self_attention(x, w_q, w_k, w_v):
    return attention(x @ w_q, x @ w_k, x @ w_v)[0]


def test_attention_is_permutation_equivariant_and_positions_break_it():
    g = torch.Generator().manual_seed(0)
    T, d = 6, 16
    x = torch.randn(1, T, d, generator=g, dtype=torch.float64)
    w = [torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) for _ in range(3)]
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out = _self_attention(x, *w)
    assert torch.allclose(_self_attention(x[:, perm], *w), out[:, perm], atol=1e-12)

    pe = sinusoidal_encoding(T, d, dtype=torch.float64)
    out_pe = _self_attention(x + pe, *w)
    permuted_pe = _self_attention(x[:, perm] + pe, *w)
    assert (permuted_pe - out_pe[:, perm]).abs().max() > 1e-3

    learned = LearnedPositionalEmbedding(T, d, init_std=1.0).double()
    with torch.no_grad():
        out_l = _self_attention(learned(x), *w)
        permuted_l = _self_attention(learned(x[:, perm]), *w)
    assert (permuted_l - out_l[:, perm]).abs().max() > 1e-3


def test_learned_embedding_adds_rows_and_checks_inputs():
    emb = LearnedPositionalEmbedding(10, 8)
    assert sum(p.numel() for p in emb.parameters()) == 80
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        y = emb(x)
        assert torch.allclose(y - x, emb.embedding.weight[:4].expand(2, 4, 8), atol=1e-6)
        assert torch.allclose(emb(x, offset=3)[0] - x[0], emb.embedding.weight[3:7], atol=1e-6)
    assert emb.positions(5).shape == (5, 8)
    with pytest.raises(ValueError, match="max_len=10"):
        emb(torch.randn(1, 11, 8))
    with pytest.raises(ShapeError, match=r"\(B, T, 8\)"):
        emb(torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="max_len"):
        LearnedPositionalEmbedding(0, 8)


def test_rope_frequencies_and_angles():
    theta = rope_frequencies(8)
    assert torch.allclose(theta, torch.tensor([1.0, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75],
                                              dtype=torch.float64))
    ang = rope_angles(3, 8, offset=2)
    assert ang.shape == (3, 4) and torch.allclose(ang[0], 2 * theta)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7)


def test_rope_matches_a_rotation_matrix_by_hand():
    d, p = 6, 3
    x = torch.randn(1, d, dtype=torch.float64)
    R = torch.zeros(d, d, dtype=torch.float64)
    for i, th in enumerate(rope_frequencies(d)):
        c, s = math.cos(p * th), math.sin(p * th)
        R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[c, -s], [s, c]])
    got = apply_rope(x, positions=torch.tensor([p]))
    assert torch.allclose(got, x @ R.T, atol=1e-12)
    assert torch.allclose(apply_rope(x, offset=p), got)


def test_rope_preserves_norms_and_position_zero():
    x = torch.randn(2, 3, 9, 16, dtype=torch.float64)
    y = apply_rope(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-12)
    assert torch.allclose(y[..., 0, :], x[..., 0, :])          # position 0: no rotation
    assert not torch.allclose(y[..., 1:, :], x[..., 1:, :])


def test_rope_relative_position_property():
    """q_m . k_n depends only on m - n: the same q and k placed at different absolute positions."""
    g = torch.Generator().manual_seed(1)
    d = 32
    q, k = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)

    def score(m, n):
        qm = apply_rope(q[None], positions=torch.tensor([m]))[0]
        kn = apply_rope(k[None], positions=torch.tensor([n]))[0]
        return float(qm @ kn)

    for delta in (-7, -1, 0, 2, 5, 30):
        values = [score(m, m - delta) for m in (40, 45, 60, 100, 517)]
        assert max(values) - min(values) < 1e-9, (delta, values)
    assert abs(score(10, 3) - score(10, 4)) > 1e-6          # different offsets give different scores


def test_rope_errors():
    with pytest.raises(ShapeError, match="d even"):
        apply_rope(torch.randn(4, 5))
    with pytest.raises(ShapeError, match=r"\(\.\.\., T, d\)"):
        apply_rope(torch.randn(8))
    with pytest.raises(ShapeError, match="positions"):
        apply_rope(torch.randn(4, 6), positions=torch.arange(3))
    with pytest.raises(ShapeError):
        apply_rope([1.0, 2.0])


def test_rope_keeps_dtype_float32_and_gradients():
    x = torch.randn(2, 5, 8, requires_grad=True)
    y = apply_rope(x)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_plot_positional_encoding_and_its_explorer():
    import matplotlib.pyplot as plt

    from course_utils.plots import plot_positional_encoding
    from course_utils.widgets import positional_explorer

    fig = plot_positional_encoding(position=5, pair=2, d=16, T=40)
    assert len(fig.axes) == 3 and all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    with pytest.raises(ValueError, match="pair"):
        plot_positional_encoding(pair=8, d=16)
    with pytest.raises(ValueError, match="even"):
        plot_positional_encoding(d=15)
    with pytest.raises(ValueError, match="position"):
        plot_positional_encoding(position=40, T=40)
    box = positional_explorer(position=3, pair=10, d=64, T=32)
    pos, pair, size = box.children[0].children
    pos.value = 31
    size.value = 16                      # pair 10 does not exist for d=16: the slider is clamped to 7
    assert pair.max == 7 and pair.value == 7
    plt.close("all")


def _rope_by_cos_sin(x, angles):
    """The rotation in real arithmetic, pair by pair: the formula apply_rope computes with complex numbers."""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], dim=-1).flatten(-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rope_by_complex_numbers_equals_the_cos_sin_formula(dtype):
    x = torch.randn(2, 3, 9, 16, dtype=dtype)
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=0)
    for offset in (0, 5, 4000):
        got = apply_rope(x, offset=offset, base=500.0)
        assert got.dtype == dtype and got.shape == x.shape
        torch.testing.assert_close(got, _rope_by_cos_sin(x, rope_angles(9, 16, 500.0, offset)), **tol)
    pos = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5])
    want = _rope_by_cos_sin(x, pos.double()[:, None] * rope_frequencies(16)[None, :])
    torch.testing.assert_close(apply_rope(x, positions=pos), want, **tol)
    xt = x.transpose(1, 2).contiguous().transpose(1, 2)           # a non-contiguous view, as attention passes it
    torch.testing.assert_close(apply_rope(xt), apply_rope(x.contiguous()), atol=0, rtol=0)


def test_rope_table_is_computed_once_per_length_and_gradients_flow():
    from course_utils import positional
    positional._rotation_table.cache_clear()
    x = torch.randn(2, 7, 8, requires_grad=True)
    for _ in range(3):
        apply_rope(x)
    info = positional._rotation_table.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    apply_rope(x).square().sum().backward()        # a rotation keeps norms: d/dx |R x|^2 = 2 x
    torch.testing.assert_close(x.grad, 2 * x.detach(), atol=1e-5, rtol=1e-5)
