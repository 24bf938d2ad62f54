"""The GPTConfig options a Llama-architecture model needs (rope_base, norm_eps, ffn_hidden): each reaches the layer
it sets and equals a reference, the exact counts honour them, the KV cache gives the logits of the whole window,
SmolLM2-135M's config counts 134,515,008 parameters, RoPE stays exact at 8,192 positions, bad values are named,
and the defaults leave every existing model as it was."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from course_utils import sizing
from course_utils.generation import generate, generate_no_cache
from course_utils.layers import LayerNorm, ModernBlock, RMSNorm, SwiGLU
from course_utils.model import GPTConfig, MiniGPT, filled_config, is_modern
from course_utils.modern import param_count
from course_utils.positional import apply_rope

LLAMA = dict(vocab_size=37, block_size=24, d_model=48, n_heads=6, n_layers=2, n_kv_heads=2, pos="rope",
             norm="rmsnorm", mlp="swiglu", bias=False, tied=True, rope_base=1e5, norm_eps=1e-5, ffn_hidden=80)

SMOLLM2_135M = GPTConfig(vocab_size=49152, block_size=8192, d_model=576, n_heads=9, n_layers=30, n_kv_heads=3,
                         pos="rope", norm="rmsnorm", mlp="swiglu", bias=False, tied=True, rope_base=100000.0,
                         norm_eps=1e-5, ffn_hidden=1536, dropout=0.0)


def _model(**kw) -> MiniGPT:
    torch.manual_seed(0)
    return MiniGPT(GPTConfig(**{**LLAMA, **kw})).eval()


def test_a_llama_style_config_builds_counts_and_its_cache_equals_the_whole_window():
    m = _model()
    assert is_modern(m.config) and all(isinstance(b, ModernBlock) for b in m.blocks)
    assert m.num_params() == param_count(m.config)
    assert sizing.param_count(sizing.from_gpt_config(m.config)) == m.num_params()
    x = torch.randint(0, 37, (2, 20))
    full, _ = m(x)
    cache = [{} for _ in m.blocks]
    first, _ = m(x[:, :7], cache=cache)
    rest = [m(x[:, t:t + 1], cache=cache)[0] for t in range(7, 20)]
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, atol=1e-5, rtol=1e-4)
    prompt = x[:, :5]
    assert torch.equal(generate(m, prompt, 12, greedy=True), generate_no_cache(m, prompt, 12, greedy=True))


def test_ffn_hidden_sets_the_width_of_every_feed_forward_and_the_counts_follow():
    for mlp, n_mats in (("swiglu", 3), ("gelu", 2), ("relu2", 2)):
        bias = mlp == "gelu"        # the GPT-2 feed-forward with its biases, the others without
        m = _model(mlp=mlp, ffn_hidden=72, bias=bias, norm="layernorm" if bias else "rmsnorm")
        for block in m.blocks:
            assert block.ffn.w1.weight.shape == (72, 48) and block.ffn.w2.weight.shape == (48, 72)
            assert sum(p.dim() == 2 for p in block.ffn.parameters()) == n_mats
        assert m.num_params() == param_count(m.config)
        assert sizing.param_count(sizing.from_gpt_config(m.config)) == m.num_params()
    # SwiGLU's weights: w1 = gate, w3 = up, w2 = down, at the explicit width
    f = _model(ffn_hidden=56).blocks[0].ffn
    assert isinstance(f, SwiGLU) and f.w3.weight.shape == (56, 48)
    x = torch.randn(2, 3, 48)
    torch.testing.assert_close(f(x), (F.silu(x @ f.w1.weight.T) * (x @ f.w3.weight.T)) @ f.w2.weight.T)


def test_norm_eps_reaches_every_norm_and_equals_torchs_norms():
    m = _model(norm_eps=1e-3, qk_norm=True)
    norms = [mod for mod in m.modules() if isinstance(mod, RMSNorm)]
    assert len(norms) == 2 * 2 + 2 * 2 + 1 and all(n.eps == 1e-3 for n in norms)   # 2 + q/k per block, final
    x = torch.randn(2, 5, 48) * 0.01      # small activations: eps matters
    ref = torch.nn.RMSNorm(48, eps=1e-3)
    torch.testing.assert_close(m.ln_f(x), ref(x))
    ln = _model(norm="layernorm", mlp="gelu", bias=True, norm_eps=1e-3).ln_f
    assert isinstance(ln, LayerNorm)
    torch.testing.assert_close(ln(x), torch.nn.LayerNorm(48, eps=1e-3)(x))
    # None keeps each norm's own default
    assert _model(norm_eps=None).ln_f.eps == 1e-6
    assert _model(norm="layernorm", norm_eps=None).ln_f.eps == 1e-5


def _reference_attention(a, x: torch.Tensor, base: float) -> torch.Tensor:
    """Causal attention with 6 query heads sharing 2 key/value heads (repeated), RoPE of ``base`` on q and k."""
    q = a.w_q(x).view(1, 9, 6, 8).transpose(1, 2)
    k = a.w_k(x).view(1, 9, 2, 8).transpose(1, 2).repeat_interleave(3, dim=1)
    v = a.w_v(x).view(1, 9, 2, 8).transpose(1, 2).repeat_interleave(3, dim=1)
    out = F.scaled_dot_product_attention(apply_rope(q, base=base), apply_rope(k, base=base), v, is_causal=True)
    return a.w_o(out.transpose(1, 2).reshape(1, 9, 48))


def test_rope_base_reaches_the_attention_and_equals_the_rotation_with_that_base():
    m = _model()
    x = torch.randn(1, 9, 48)
    with torch.no_grad():
        for p in m.parameters():          # larger weights than at init, so the angles change the scores visibly
            p.normal_(0, 0.5)
        mine = m.blocks[0].attn(x)
        torch.testing.assert_close(mine, _reference_attention(m.blocks[0].attn, x, 1e5))
        other = MiniGPT(replace(m.config, rope_base=10000.0)).eval()
        other.load_state_dict(m.state_dict())
        theirs = other.blocks[0].attn(x)
        torch.testing.assert_close(theirs, _reference_attention(m.blocks[0].attn, x, 1e4))
    assert not torch.allclose(mine, theirs, rtol=1e-3, atol=1e-3)      # the base matters


def test_rope_is_exact_at_long_contexts():
    """At position 8,191 the angle is 8,191 radians: computed in float64, then rotated in float32."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 4, 64, generator=g)
    base, d = 1e5, 64
    positions = torch.arange(8188, 8192, dtype=torch.float64)
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = positions[:, None] * theta[None, :]
    x64 = x.double()
    even, odd = x64[..., 0::2], x64[..., 1::2]
    want = torch.stack([even * ang.cos() - odd * ang.sin(), even * ang.sin() + odd * ang.cos()], -1).flatten(-2)
    got = apply_rope(x, base=base, offset=8188)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(apply_rope(x, positions=positions.long(), base=base), got)


def test_smollm2_135m_config_counts_134515008_parameters():
    c = SMOLLM2_135M
    assert param_count(c) == 134_515_008
    assert sizing.param_count(sizing.from_gpt_config(c)) == 134_515_008
    # by hand: embedding (tied) + 30 blocks (attention with 3 kv heads of 64, SwiGLU 3 x 576 x 1536, 2 RMSNorms)
    d, kv = 576, 3 * 64
    block = 2 * d * d + 2 * d * kv + 3 * d * 1536 + 2 * d
    assert 49152 * d + 30 * block + d == 134_515_008


def test_the_default_options_leave_existing_models_unchanged():
    c = GPTConfig(vocab_size=11)
    assert (c.rope_base, c.norm_eps, c.ffn_hidden) == (10000.0, None, None) and not is_modern(c)
    # any of the new options alone switches to the configurable block (GPT-2's fast decoding path assumes defaults)
    for kw in (dict(rope_base=5e4), dict(norm_eps=1e-6), dict(ffn_hidden=64)):
        assert is_modern(GPTConfig(vocab_size=11, **kw))
    # a checkpoint's config written before these fields existed compares equal once filled
    old = {k: v for k, v in asdict(c).items() if k not in ("rope_base", "norm_eps", "ffn_hidden")}
    assert filled_config(old) == asdict(c) and old != asdict(c)


@pytest.mark.parametrize("kw, match", [
    (dict(rope_base=1.0), "rope_base is RoPE's base"),
    (dict(rope_base=math.inf), "rope_base"),
    (dict(rope_base="1e5"), "rope_base"),
    (dict(norm_eps=0.0), "norm_eps is the eps of every norm"),
    (dict(norm_eps=-1e-5), "norm_eps"),
    (dict(norm_eps=math.nan), "norm_eps"),
    (dict(ffn_hidden=0), "ffn_hidden is the feed-forward hidden width"),
    (dict(ffn_hidden=96.5), "ffn_hidden"),
    (dict(ffn_hidden=True), "ffn_hidden"),
])
def test_bad_llama_options_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**LLAMA, **kw})


def test_sizing_refuses_what_it_does_not_count():
    with pytest.raises(sizing.ConfigError, match="qk_norm"):
        sizing.from_gpt_config(GPTConfig(**{**LLAMA, "qk_norm": True}))
    with pytest.raises(sizing.ConfigError, match="LayerNorm keeps its"):
        sizing.from_gpt_config(GPTConfig(**{**LLAMA, "norm": "layernorm"}))


def test_the_repr_shows_the_llama_options_only_when_set():
    plain = GPTConfig(vocab_size=11)
    assert repr(plain) == ("GPTConfig(vocab_size=11, block_size=128, d_model=128, n_heads=4, n_layers=4, "
                           "dropout=0.0, fast=True, pos='learned', norm='layernorm', mlp='gelu', qk_norm=False, "
                           "tied=True, zero_init=False, n_kv_heads=None, bias=True)")
    r = repr(SMOLLM2_135M)
    assert r.endswith("bias=False, rope_base=100000.0, norm_eps=1e-05, ffn_hidden=1536)")
    assert eval(r, {"GPTConfig": GPTConfig}) == SMOLLM2_135M
