"""course_utils.sizing: published totals, exact agreement with the real MiniGPT, memory, FLOPs, KV cache, errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_utils import sizing
from course_utils.model import GPTConfig, MiniGPT, gpt_param_count
from course_utils.sizing import ConfigError, ModelConfig

# The totals as published (model cards, papers, nanoGPT's printout); written here independently of the module.
PUBLISHED_TOTALS = {
    "GPT-2 small": 124_439_808,
    "GPT-2 small (no biases)": 124_337_664,
    "Llama-2-7B": 6_738_415_616,
    "Llama-3-8B": 8_030_261_248,
    "Llama-3-70B": 70_553_706_496,
}


@pytest.mark.parametrize("name", list(PUBLISHED_TOTALS))
def test_published_totals(name):
    assert sizing.param_count(sizing.PUBLISHED[name]) == PUBLISHED_TOTALS[name]


def test_gpt3_is_174_6_billion():
    n = sizing.param_count(sizing.PUBLISHED["GPT-3 175B"])
    assert round(n / 1e9, 1) == 174.6
    assert 12 * 96 * 12288**2 < n   # the 12 L d^2 rule leaves out embeddings and biases


def test_published_configs_are_the_published_sizes():
    c = sizing.PUBLISHED["Llama-3-70B"]
    assert (c.n_layers, c.d_model, c.n_heads, c.kv_heads, c.ffn_width, c.vocab_size) == (80, 8192, 64, 8, 28672,
                                                                                         128256)
    g = sizing.PUBLISHED["GPT-3 175B"]
    assert (g.n_layers, g.d_model, g.n_heads, g.vocab_size, g.head_dim) == (96, 12288, 96, 50257, 128)


@pytest.mark.parametrize("V,T,d,L,h", [(65, 64, 128, 4, 4), (100, 32, 48, 2, 3), (7, 16, 16, 1, 1),
                                       (300, 128, 96, 3, 8)])
def test_matches_minigpt_exactly(V, T, d, L, h):
    model = MiniGPT(GPTConfig(vocab_size=V, block_size=T, d_model=d, n_layers=L, n_heads=h))
    cfg = sizing.from_gpt_config(model.config)
    assert sizing.param_count(cfg) == model.num_params() == gpt_param_count(V, T, d, L)
    parts = sizing.param_breakdown(cfg)
    assert parts["token embedding"] == model.tok_emb.weight.numel()
    assert parts["attention"] == sum(p.numel() for b in model.blocks for p in b.attn.parameters())
    assert parts["feed-forward"] == sum(p.numel() for b in model.blocks for p in b.ffn.parameters())
    assert parts["output layer"] == 0


def test_breakdown_parts_and_variants():
    base = ModelConfig(1000, 128, 64, 2, 8)
    p = sizing.param_breakdown(base)
    assert set(p) == {"token embedding", "position embedding", "attention", "feed-forward", "norms",
                      "output layer"}
    untied = sizing.param_count(base.with_(tied=False)) - sizing.param_count(base)
    assert untied == 1000 * 64
    rope = sizing.param_count(base) - sizing.param_count(base.with_(pos="rope"))
    assert rope == 128 * 64
    gqa = sizing.param_breakdown(base.with_(n_kv_heads=2, bias=False))["attention"]
    assert gqa == 2 * (2 * 64 * 64 + 2 * 64 * 16)
    swiglu = sizing.param_breakdown(base.with_(ffn="swiglu", d_ff=100, bias=False))["feed-forward"]
    assert swiglu == 2 * 3 * 64 * 100
    assert sizing.param_breakdown(base.with_(norm="rmsnorm"))["norms"] == 5 * 64


def test_non_embedding_and_matmul_params():
    c = sizing.PUBLISHED["GPT-2 small"]
    p = sizing.param_breakdown(c)
    assert sizing.non_embedding_params(c) == p["attention"] + p["feed-forward"] + p["norms"]
    assert sizing.matmul_params(c) == 12 * 12 * 768**2 + 50257 * 768


def test_memory():
    assert sizing.weight_bytes(70e9, "fp16") == 140e9
    assert sizing.weight_bytes(10, "int4") == 5
    assert sizing.weight_bytes(10, 3) == 30
    t = sizing.training_bytes(1000)
    assert t["total"] == 16_000 and t["gradients"] == 4000
    mixed = sizing.training_bytes(1000, "bf16", moments="fp32", master="fp32")
    assert mixed["total"] == 16_000 and mixed["weights"] == 2000 and mixed["master weights"] == 4000
    with pytest.raises(ValueError, match="unknown precision"):
        sizing.weight_bytes(10, "fp12")
    with pytest.raises(ValueError, match="non-negative"):
        sizing.weight_bytes(-1)


def test_kv_cache_matches_the_real_cache():
    cfg = GPTConfig(vocab_size=50, block_size=32, d_model=64, n_layers=3, n_heads=4)
    model = MiniGPT(cfg).eval()
    cache = [{} for _ in model.blocks]
    with torch.no_grad():
        model(torch.zeros(2, 20, dtype=torch.long), cache=cache)
    real = sum(c[k].numel() * c[k].element_size() for c in cache for k in ("k", "v"))
    assert real == sizing.kv_cache_bytes(sizing.from_gpt_config(cfg), 20, batch=2, precision="fp32")


def test_kv_cache_gqa_saving():
    c = sizing.PUBLISHED["Llama-3-70B"]
    full = sizing.kv_cache_bytes(c.with_(n_kv_heads=None), 8192)
    assert full / sizing.kv_cache_bytes(c, 8192) == 8
    assert sizing.kv_cache_bytes(c, 8192) == 2 * 80 * 8 * 128 * 8192 * 2


def test_attention_scores_bytes():
    assert sizing.attention_scores_bytes(131072) / sizing.attention_scores_bytes(4096) == 1024
    assert sizing.attention_scores_bytes(4, "fp32", heads=2, batch=3) == 4 * 4 * 4 * 2 * 3
    with pytest.raises(ConfigError):
        sizing.attention_scores_bytes(0)


def test_forward_flops_match_flop_counter_on_explicit_attention():
    cfg = GPTConfig(vocab_size=40, block_size=16, d_model=32, n_layers=2, n_heads=4, fast=False)
    model = MiniGPT(cfg)
    B, T = 3, 16
    x = torch.randint(0, 40, (B, T))
    with FlopCounterMode(display=False) as fc:
        model(x)
    assert fc.get_total_flops() == B * T * sizing.forward_flops_per_token(sizing.from_gpt_config(cfg), T)


@pytest.mark.parametrize("options", [{}, dict(pos="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, tied=False,
                                              n_kv_heads=2, bias=False)], ids=["gpt2-style", "modern"])
def test_training_flops_per_token_equal_the_flop_counter_on_forward_and_backward(options):
    # the modern options run only through the fused attention kernel, which FlopCounterMode does not count on
    # the CPU: there the counter must miss exactly the attention term, 3 x 4 L T d per token
    cfg = GPTConfig(vocab_size=40, block_size=16, d_model=32, n_layers=2, n_heads=4, fast=bool(options),
                    **options)
    model = MiniGPT(cfg)
    B, T = 3, 16
    x, y = torch.randint(0, 40, (B, T)), torch.randint(0, 40, (B, T))
    with FlopCounterMode(display=False) as fc:
        _, loss = model(x, y)
        loss.backward()
    uncounted = 3 * 4 * cfg.n_layers * T * cfg.d_model if options else 0
    assert fc.get_total_flops() + B * T * uncounted == B * T * sizing.training_flops_per_token(cfg, T)
    mc = sizing.from_gpt_config(cfg, strict=False)
    assert sizing.training_flops_per_token(mc) == 3 * sizing.forward_flops_per_token(mc, 16)
    # Kaplan's 6N + 6LTd: the causal count (T + 1) / 2 keys per query
    kaplan = 6 * sizing.matmul_params(mc) + 6 * cfg.n_layers * (T + 1) * cfg.d_model
    assert sizing.training_flops_per_token(mc, causal=True) == pytest.approx(kaplan)
    if options:
        with pytest.raises(ConfigError, match="qk_norm"):
            sizing.from_gpt_config(cfg)                       # the parameter count would be wrong: refused


def test_forward_flops_causal_and_default():
    c = ModelConfig(100, 64, 32, 2, 4)
    assert sizing.forward_flops_per_token(c) == sizing.forward_flops_per_token(c, 64)
    assert sizing.forward_flops_per_token(c, 64) - sizing.forward_flops_per_token(c, 64, causal=True) == \
        4 * 2 * 32 * (64 - 32.5)


def test_training_flops_and_gpu_days():
    assert sizing.training_flops(175e9, 300e9) == pytest.approx(3.15e23)
    assert sizing.gpu_days(86_400e12, 1e12, utilisation=1.0) == 1.0
    assert sizing.gpu_days(86_400e12, 1e12, utilisation=0.5, n_gpus=4) == 0.5
    with pytest.raises(ValueError, match="utilisation"):
        sizing.gpu_days(1, 1, utilisation=40)
    with pytest.raises(ValueError, match="peak"):
        sizing.gpu_days(1, 0)


def test_fitting_gpus():
    assert sizing.fitting_gpus(30 * 2**30) == ["40 GiB (A100-40)", "48 GiB (L40S, A6000)", "80 GiB (A100-80, H100)"]
    assert sizing.fitting_gpus(200e9) == []
    assert sizing.fitting_gpus(1, {"tiny": 1}) == ["tiny"]


def test_summary_mentions_the_numbers():
    s = sizing.summary(sizing.PUBLISHED["Llama-3-8B"], T=8192)
    assert "8,030,261,248 parameters" in s and "8 kv heads of 32" in s and "fits in" in s
    assert "none (needs" in sizing.summary(sizing.PUBLISHED["Llama-3-70B"])


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(d_model=100, n_heads=3), "does not divide d_model=100"),
    (dict(n_heads=8, n_kv_heads=3), "n_kv_heads=3 does not divide n_heads=8"),
    (dict(n_layers=0), "n_layers should be a positive integer"),
    (dict(vocab_size=2.5), "vocab_size should be a positive integer"),
    (dict(ffn="relu"), "ffn should be 'gelu' or 'swiglu'"),
    (dict(pos="alibi"), "pos should be"),
    (dict(norm="batchnorm"), "norm should be"),
    (dict(d_ff=0), "d_ff should be"),
])
def test_bad_configs_have_clear_errors(kwargs, fragment):
    base = dict(vocab_size=100, n_ctx=64, d_model=64, n_layers=2, n_heads=4)
    base.update(kwargs)
    with pytest.raises(ConfigError, match=fragment):
        ModelConfig(**base)
    assert issubclass(ConfigError, ValueError)


def test_with_checks_again():
    with pytest.raises(ConfigError, match="does not divide"):
        sizing.PUBLISHED["GPT-2 small"].with_(n_heads=7)


def test_sizing_calculator_widget(capsys):
    from course_utils.widgets import sizing_calculator

    box = sizing_calculator(start="Llama-3-8B")
    choose = box.children[0]
    d_model, layers, heads = box.children[1].children
    kv, vocab, context = box.children[2].children
    precision = box.children[3]
    assert "8,030,261,248 parameters" in capsys.readouterr().out
    choose.value = "GPT-2 small"
    assert (d_model.value, layers.value, heads.value, kv.value, vocab.value, context.value) == (768, 12, 12, 12,
                                                                                                50257, 1024)
    assert "124,439,808 parameters" in capsys.readouterr().out
    heads.value = 16                     # plain multi-head attention: the kv heads follow
    assert kv.value == 16 and "16 heads (no GQA)" in capsys.readouterr().out
    heads.value = 7                      # does not divide 768: explained, not a traceback
    assert "not a valid config" in capsys.readouterr().out
    kv.value = 1                         # still invalid: the output names the settings, so it follows every control
    assert "kv heads=1" in capsys.readouterr().out
    heads.value = 12
    precision.value = "int4"
    assert "weights in int4" in capsys.readouterr().out
