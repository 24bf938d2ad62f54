"""course_utils.attention.MultiHeadAttention against nn.MultiheadAttention (same weights), its parameter count,
and the loop over heads against the batched computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from course_utils.attention import MultiHeadAttention, causal_mask, head_loop


def _copy_into_torch(mine: MultiHeadAttention) -> nn.MultiheadAttention:
    d, h = mine.d_model, mine.n_heads
    ref = nn.MultiheadAttention(d, h, bias=True, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mine.w_q.weight, mine.w_k.weight, mine.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mine.w_q.bias, mine.w_k.bias, mine.w_v.bias]))
        ref.out_proj.weight.copy_(mine.w_o.weight)
        ref.out_proj.bias.copy_(mine.w_o.bias)
    return ref.eval()


@pytest.mark.parametrize("causal", [False, True], ids=["no mask", "causal"])
@pytest.mark.parametrize("d_model,n_heads,T", [(32, 4, 7), (64, 8, 12), (48, 1, 5), (16, 16, 3)])
def test_equals_torch_multihead_attention(d_model, n_heads, T, causal):
    torch.manual_seed(d_model + n_heads + T)
    mine = MultiHeadAttention(d_model, n_heads).eval()
    ref = _copy_into_torch(mine)
    x = torch.randn(3, T, d_model)
    with torch.no_grad():
        got = mine(x, causal=causal)
        # PyTorch's boolean attn_mask means the opposite of ours: True = blocked
        want, weights = ref(x, x, x, attn_mask=~causal_mask(T) if causal else None, need_weights=True,
                            average_attn_weights=False)
        mine.keep_weights = True
        mine(x, causal=causal)
    assert (got - want).abs().max().item() < 1e-5
    assert (mine.last_weights - weights).abs().max().item() < 1e-5


@pytest.mark.parametrize("d_model,n_heads", [(32, 4), (128, 8), (50, 5)])
def test_parameter_count_is_4d2_plus_4d(d_model, n_heads):
    mha = MultiHeadAttention(d_model, n_heads)
    count = sum(p.numel() for p in mha.parameters())
    assert count == 4 * d_model**2 + 4 * d_model
    assert count == sum(p.numel() for p in nn.MultiheadAttention(d_model, n_heads).parameters())
    assert sum(p.numel() for p in MultiHeadAttention(d_model, n_heads, bias=False).parameters()) == 4 * d_model**2


@pytest.mark.parametrize("causal", [False, True])
def test_loop_over_heads_equals_batched(causal):
    torch.manual_seed(0)
    mha = MultiHeadAttention(64, 4).eval()
    x = torch.randn(2, 9, 64)
    with torch.no_grad():
        looped = head_loop(mha, x, causal_mask(9) if causal else None)
        batched = mha(x, causal=causal)
    assert (looped - batched).abs().max().item() < 1e-5


def test_split_and_merge_heads_shapes_and_inverse():
    mha = MultiHeadAttention(24, 3)
    x = torch.randn(2, 5, 24)
    s = mha.split_heads(x)
    assert s.shape == (2, 3, 5, 8)
    assert torch.equal(s[:, 1], x[..., 8:16])            # head 1 holds features 8..15 of every token
    assert torch.equal(mha.merge_heads(s), x)


def test_each_head_scales_by_sqrt_d_head():
    torch.manual_seed(1)
    mha = MultiHeadAttention(32, 4).eval()
    mha.keep_weights = True
    x = torch.randn(1, 6, 32)
    with torch.no_grad():
        mha(x)
        q, k = mha.split_heads(mha.w_q(x)), mha.split_heads(mha.w_k(x))
    want = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
    assert torch.allclose(mha.last_weights, want, atol=1e-6)


def test_head_loop_names_the_expected_shape():
    from course_utils.errors import ShapeError

    with pytest.raises(ShapeError, match=r"\(B, T, 64\)"):
        head_loop(MultiHeadAttention(64, 4), torch.randn(2, 9, 32))
