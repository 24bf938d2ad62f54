"""course_utils.model: every hand-built piece equals PyTorch's own; the MiniGPT passes a practitioner's checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from course_utils.errors import ShapeError
from course_utils.model import Block, FeedForward, GPTConfig, LayerNorm, MiniGPT, gpt_param_count, params_per_block

TOL = 1e-5


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- LayerNorm ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("shape", [(4, 16), (2, 5, 32), (3, 2, 7, 8)])
def test_layernorm_equals_torch(shape, fast):
    d = shape[-1]
    x = torch.randn(*shape, generator=_gen(1)) * 3 + 2
    ours, ref = LayerNorm(d, fast=fast), nn.LayerNorm(d)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(d, generator=_gen(2)))
        ref.bias.copy_(torch.randn(d, generator=_gen(3)))
    ours.load_state_dict(ref.state_dict())
    assert (ours(x) - ref(x)).abs().max() < TOL
    # gradients agree too
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours(x1).pow(2).sum().backward()
    ref(x2).pow(2).sum().backward()
    assert (x1.grad - x2.grad).abs().max() < 1e-4


def test_layernorm_output_is_normalised_before_the_gain():
    y = LayerNorm(64)(torch.randn(10, 64, generator=_gen(4)) * 5 + 3)
    assert y.mean(-1).abs().max() < 1e-5
    assert (y.var(-1, unbiased=False) - 1).abs().max() < 1e-3


def test_layernorm_names_the_expected_shape():
    with pytest.raises(ShapeError, match=r"LayerNorm expects \(\.\.\., 8\)"):
        LayerNorm(8)(torch.randn(2, 5))


def test_feedforward_is_gelu_mlp_of_width_4d():
    ffn = FeedForward(16)
    assert ffn.w1.weight.shape == (64, 16) and ffn.w2.weight.shape == (16, 64)
    x = torch.randn(2, 3, 16, generator=_gen(5))
    want = torch.nn.functional.gelu(x @ ffn.w1.weight.T + ffn.w1.bias) @ ffn.w2.weight.T + ffn.w2.bias
    assert (ffn(x) - want).abs().max() < TOL


# ---- Block == nn.TransformerEncoderLayer ----------------------------------------------------------------------

def _copy_into_torch_layer(block: Block, d: int, h: int) -> nn.TransformerEncoderLayer:
    ref = nn.TransformerEncoderLayer(d, h, dim_feedforward=4 * d, dropout=0.0, activation="gelu",
                                     batch_first=True, norm_first=True)
    a = block.attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.w_q.weight, a.w_k.weight, a.w_v.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.w_q.bias, a.w_k.bias, a.w_v.bias]))
        ref.self_attn.out_proj.weight.copy_(a.w_o.weight)
        ref.self_attn.out_proj.bias.copy_(a.w_o.bias)
        ref.linear1.weight.copy_(block.ffn.w1.weight)
        ref.linear1.bias.copy_(block.ffn.w1.bias)
        ref.linear2.weight.copy_(block.ffn.w2.weight)
        ref.linear2.bias.copy_(block.ffn.w2.bias)
        for ours, theirs in ((block.ln1, ref.norm1), (block.ln2, ref.norm2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    return ref


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("B,T,d,h", [(2, 7, 16, 2), (1, 5, 32, 4), (3, 9, 24, 3)])
def test_block_equals_torch_encoder_layer_with_causal_mask(B, T, d, h, fast):
    torch.manual_seed(B * 100 + T)
    block = Block(d, h, fast=fast)
    with torch.no_grad():                       # non-trivial LayerNorm gains and biases
        for ln in (block.ln1, block.ln2):
            ln.weight.add_(0.3 * torch.randn(d))
            ln.bias.add_(0.3 * torch.randn(d))
    ref = _copy_into_torch_layer(block, d, h)
    x = torch.randn(B, T, d)
    blocked = ~torch.ones(T, T, dtype=torch.bool).tril()    # PyTorch's boolean attn mask: True = blocked
    want = ref(x, src_mask=blocked, is_causal=True)
    got = block(x, causal=True)
    assert got.shape == (B, T, d)
    assert (got - want).abs().max() < 1e-5


def test_post_norm_block_equals_torch_encoder_layer_post_norm():
    from course_utils.model import PostNormBlock

    torch.manual_seed(7)
    d, h, T = 24, 3, 6
    block = PostNormBlock(d, h)
    with torch.no_grad():
        for ln in (block.ln1, block.ln2):
            ln.weight.add_(0.3 * torch.randn(d))
            ln.bias.add_(0.3 * torch.randn(d))
    ref = _copy_into_torch_layer(block, d, h)
    ref.norm_first = False                                   # PyTorch's post-norm layer, same weights
    x = torch.randn(2, T, d)
    blocked = ~torch.ones(T, T, dtype=torch.bool).tril()
    want = ref(x, src_mask=blocked, is_causal=True)
    assert (block(x, causal=True) - want).abs().max() < 1e-5
    assert (block(x, causal=True) - Block(d, h)(x)).abs().max() > 1e-3     # not the pre-norm function
    assert sum(p.numel() for p in block.parameters()) == params_per_block(d)


def test_block_without_causal_mask_equals_torch_without_mask():
    torch.manual_seed(0)
    block = Block(16, 4)
    ref = _copy_into_torch_layer(block, 16, 4)
    x = torch.randn(2, 6, 16)
    assert (block(x, causal=False) - ref(x)).abs().max() < 1e-5


def test_block_switches_for_the_depth_experiments():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    plain = Block(16, 2, residual=False, norm=False)
    assert isinstance(plain.ln1, nn.Identity) and isinstance(plain.ln2, nn.Identity)
    # without the residual path the block's output is the feed-forward's output alone
    a = plain.attn(x, causal=True)
    assert (plain(x) - plain.ffn(a)).abs().max() < TOL
    res = Block(16, 2, norm=False)
    res.load_state_dict(plain.state_dict())
    h = x + res.attn(x, causal=True)
    assert (res(x) - (h + res.ffn(h))).abs().max() < TOL


# ---- parameter counts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [8, 64, 128, 384])
def test_params_per_block_formula(d):
    n = sum(p.numel() for p in Block(d, 4 if d % 4 == 0 else 1).parameters())
    assert n == params_per_block(d) == 12 * d * d + 13 * d
    assert abs(n / (12 * d * d) - 1) < 13 / (12 * d) + 1e-12      # "about 12 d^2", closer as d grows


def test_gpt_param_count_counts_the_tied_matrix_once():
    cfg = GPTConfig(vocab_size=50, block_size=32, d_model=48, n_heads=4, n_layers=3)
    m = MiniGPT(cfg)
    assert m.num_params() == gpt_param_count(50, 32, 48, 3)


# ---- MiniGPT --------------------------------------------------------------------------------------------------

def _tiny(V=20, T=16, d=32, L=2, h=4, fast=True, seed=0):
    torch.manual_seed(seed)
    return MiniGPT(GPTConfig(vocab_size=V, block_size=T, d_model=d, n_heads=h, n_layers=L, fast=fast))


def test_untrained_loss_is_close_to_log_vocabulary():
    V = 65
    m = _tiny(V=V, T=32, d=64)
    g = _gen(0)
    x, y = torch.randint(0, V, (8, 32), generator=g), torch.randint(0, V, (8, 32), generator=g)
    logits, loss = m(x, y)
    assert logits.shape == (8, 32, V)
    assert abs(loss.item() - math.log(V)) < 0.05


def test_overfits_one_batch():
    m = _tiny(V=12, T=16, d=32, L=2)
    g = _gen(1)
    x = torch.randint(0, 12, (4, 16), generator=g)
    y = torch.randint(0, 12, (4, 16), generator=g)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(300):
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_output_layer_is_tied_to_the_embedding():
    m = _tiny()
    x = torch.randint(0, 20, (2, 8), generator=_gen(2))
    h = m.tok_emb(x) + m.pos_emb(torch.arange(8))
    for block in m.blocks:
        h = block(h)
    assert (m(x)[0] - m.ln_f(h) @ m.tok_emb.weight.T).abs().max() < TOL
    assert sum(p.numel() for p in m.parameters() if p.shape == m.tok_emb.weight.shape) == 20 * 32
    _, loss = m(x, x)
    loss.backward()
    assert m.tok_emb.weight.grad is not None        # the one matrix gets gradient from both ends


def test_fast_and_hand_built_paths_agree():
    a, b = _tiny(fast=True), _tiny(fast=False)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 20, (3, 16), generator=_gen(3))
    assert (a(x)[0] - b(x)[0]).abs().max() < 1e-5


def test_forward_names_bad_input():
    m = _tiny()
    with pytest.raises(ShapeError, match=r"\(B, T\)"):
        m(torch.randint(0, 20, (16,)))
    with pytest.raises(TypeError, match="integer token ids"):
        m(torch.randn(2, 8))
    with pytest.raises(ShapeError, match="block_size=16"):
        m(torch.randint(0, 20, (1, 17)))
    with pytest.raises(ShapeError, match="targets"):
        m(torch.randint(0, 20, (2, 8)), torch.randint(0, 20, (2, 7)))
    with pytest.raises(ValueError, match="one dict per block"):
        m(torch.randint(0, 20, (1, 4)), cache=[{}])


@pytest.mark.parametrize("fast", [False, True])
def test_kv_cache_forward_equals_full_forward(fast):
    m = _tiny(fast=fast).eval()
    x = torch.randint(0, 20, (2, 12), generator=_gen(4))
    full, _ = m(x)
    # one token at a time
    cache = [{} for _ in m.blocks]
    steps = [m(x[:, t:t + 1], cache=cache)[0] for t in range(12)]
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5
    assert cache[0]["k"].shape == (2, 4, 12, 8)
    # a prompt chunk, then single tokens
    cache = [{} for _ in m.blocks]
    first, _ = m(x[:, :5], cache=cache)
    rest = [m(x[:, t:t + 1], cache=cache)[0] for t in range(5, 12)]
    assert (torch.cat([first, *rest], dim=1) - full).abs().max() < 1e-5
    with pytest.raises(ShapeError, match="block_size"):
        m(torch.randint(0, 20, (2, 5)), cache=cache)


def test_generate_appends_tokens_and_is_reproducible():
    m = _tiny()
    idx = torch.zeros(2, 3, dtype=torch.long)
    a = m.generate(idx, 20, generator=_gen(5))
    b = m.generate(idx, 20, generator=_gen(5))
    assert a.shape == (2, 23) and torch.equal(a, b) and torch.equal(a[:, :3], idx)
    assert int(a.max()) < 20
    assert m.training                                # generate restores the mode it found
    with pytest.raises(ValueError, match="temperature"):
        m.generate(idx, 2, temperature=0)
