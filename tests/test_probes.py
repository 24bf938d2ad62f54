"""course_utils.probes on small random MiniGPTs (GPT-2 style and modern with grouped-query attention): the logit
lens of the last stream is the model's logits, the recomputed patterns reproduce the heads' outputs and match
generation.attention_maps, ablating nothing changes nothing, ablating a whole block's part equals skipping it,
hooks go away even on error, and bad input gets a clear error."""

from __future__ import annotations

import pytest
import torch

from course_utils import probes
from course_utils.generation import attention_maps
from course_utils.model import GPTConfig, MiniGPT
from course_utils.probes import ablate, attention_pattern, head_outputs, logit_lens, mean_updates, record

GPT2 = dict(vocab_size=23, block_size=32, d_model=32, n_heads=4, n_layers=3)
MODERN = dict(GPT2, pos="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2, bias=False, tied=False, qk_norm=True)
LLAMA = dict(GPT2, pos="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2, bias=False, rope_base=1e5,
             norm_eps=1e-5, ffn_hidden=48)
CONFIGS = {"gpt2": GPT2, "modern": MODERN, "llama": LLAMA}


def _model(name: str, seed: int = 0) -> MiniGPT:
    torch.manual_seed(seed)
    m = MiniGPT(GPTConfig(**CONFIGS[name])).eval()
    with torch.no_grad():   # trained-looking weights: not all the projections near zero
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def _idx(B: int = 2, T: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, GPT2["vocab_size"], (B, T), generator=torch.Generator().manual_seed(seed))


def _no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", CONFIGS)
def test_logit_lens_of_last_stream_is_the_logits(name):
    model, idx = _model(name), _idx()
    with torch.no_grad(), record(model) as rec:
        logits, _ = model(idx)
    lens = logit_lens(model, rec.resid[-1])
    assert torch.equal(lens, logits) or (lens - logits).abs().max() <= 1e-6
    # an earlier layer reads something else
    assert not torch.allclose(logit_lens(model, rec.resid[1]), logits, atol=1e-3)
    assert _no_hooks(model)


@pytest.mark.parametrize("name", CONFIGS)
def test_stream_is_the_sum_of_updates(name):
    model, idx = _model(name), _idx()
    with torch.no_grad(), record(model) as rec:
        model(idx)
    assert rec.stream().shape == (4, 2, 12, 32)
    x0 = model.tok_emb(idx) + (model.pos_emb(torch.arange(12)) if model.pos_emb is not None else 0)
    assert torch.allclose(rec.resid[0], x0)
    for layer in range(3):
        assert torch.allclose(rec.resid[layer + 1], rec.resid[layer] + rec.attn[layer] + rec.ffn[layer], atol=1e-5)
        assert torch.allclose(model.blocks[layer].attn.w_o(rec.z[layer]), rec.attn[layer], atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_pattern_times_v_reproduces_the_heads(name):
    model, idx = _model(name), _idx()
    with torch.no_grad(), record(model) as rec:
        model(idx)
    for layer in range(3):
        a = attention_pattern(model, rec, layer)
        assert a.shape == (2, 4, 12, 12)
        assert torch.allclose(a.sum(-1), torch.ones(2, 4, 12), atol=1e-5)
        assert torch.all(a.triu(1) == 0)
        assert torch.allclose(head_outputs(model, rec, layer, a), rec.z[layer], atol=1e-5)
    # a wrong pattern (uniform over the past) does not reproduce them
    T = 12
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    wrong = uniform.expand(2, 4, T, T)
    assert not torch.allclose(head_outputs(model, rec, 0, wrong), rec.z[0], atol=1e-3)


def test_patterns_match_attention_maps_for_gpt2():
    model, idx = _model("gpt2"), _idx(B=1)
    with torch.no_grad(), record(model) as rec:
        model(idx)
    maps = attention_maps(model, idx[0])
    mine = torch.stack([attention_pattern(model, rec, layer)[0] for layer in range(3)])
    assert torch.allclose(mine, maps, atol=1e-6)


def test_gqa_heads_share_keys():
    """In the modern model heads 0 and 1 share key/value head 0: same v, so pattern rows differ only through q."""
    model, idx = _model("llama"), _idx(B=1)
    with torch.no_grad(), record(model) as rec:
        model(idx)
    _, k, v = probes._qkv(model.blocks[0].attn, rec.attn_in[0])
    assert torch.equal(k[:, 0], k[:, 1]) and torch.equal(v[:, 2], v[:, 3]) and not torch.equal(v[:, 1], v[:, 2])


@pytest.mark.parametrize("name", CONFIGS)
def test_ablating_nothing_changes_nothing(name):
    model, idx = _model(name), _idx()
    with torch.no_grad():
        ref, _ = model(idx)
        with ablate(model):
            out, _ = model(idx)
        means = mean_updates(model, idx)
        with ablate(model, mode="mean", means=means):
            out2, _ = model(idx)
    assert torch.equal(out, ref) and torch.equal(out2, ref)
    assert _no_hooks(model)


def _skip_forward(model, idx, skip_attn=(), skip_ffn=()):
    """The forward pass written out, leaving out chosen updates."""
    T = idx.shape[1]
    x = model.tok_emb(idx)
    if model.pos_emb is not None:
        x = x + model.pos_emb(torch.arange(T))
    for i, b in enumerate(model.blocks):
        if i not in skip_attn:
            x = x + b.attn(b.ln1(x), causal=True)
        if i not in skip_ffn:
            x = x + b.ffn(b.ln2(x))
    return logit_lens(model, x)


@pytest.mark.parametrize("name", CONFIGS)
def test_ablating_a_whole_part_equals_skipping_it(name):
    model, idx = _model(name), _idx()
    with torch.no_grad():
        full, _ = model(idx)
        with ablate(model, attn=[1]):
            no_attn, _ = model(idx)
        with ablate(model, ffn=[0, 2]):
            no_ffn, _ = model(idx)
        assert torch.allclose(no_attn, _skip_forward(model, idx, skip_attn=[1]), atol=1e-5)
        assert torch.allclose(no_ffn, _skip_forward(model, idx, skip_ffn=[0, 2]), atol=1e-5)
        assert not torch.allclose(no_attn, full, atol=1e-3) and not torch.allclose(no_ffn, full, atol=1e-3)
        if not model.config.bias:   # W_O has no bias: all heads zero = no attention update
            with ablate(model, heads=[(1, h) for h in range(4)]):
                all_heads, _ = model(idx)
            assert torch.allclose(all_heads, no_attn, atol=1e-6)


def test_head_ablation_changes_only_that_head():
    model, idx = _model("llama"), _idx()
    with torch.no_grad():
        with record(model) as ref:
            model(idx)
        with ablate(model, heads=[(1, 2)]), record(model) as rec:
            model(idx)
    assert torch.equal(rec.resid[1], ref.resid[1])            # blocks before are untouched
    assert torch.all(rec.z[1][..., 16:24] == 0)               # head 2 of 4, d_h = 8
    assert torch.equal(rec.z[1][..., :16], ref.z[1][..., :16])
    assert not torch.allclose(rec.resid[2], ref.resid[2])


def test_mean_ablation_puts_the_mean():
    model, idx = _model("modern"), _idx()
    with torch.no_grad():
        means = mean_updates(model, idx)
        with ablate(model, heads=[(0, 1)], ffn=[2], mode="mean", means=means), record(model) as rec:
            model(idx)
    assert torch.allclose(rec.z[0][..., 8:16], means.z[0, 8:16].expand(2, 12, 8))
    assert torch.allclose(rec.ffn[2], means.ffn[2].expand(2, 12, 32))
    assert means.attn.shape == (3, 32)


def test_hooks_removed_on_error():
    model = _model("llama")
    with pytest.raises(RuntimeError, match="boom"):
        with record(model), ablate(model, heads=[(0, 0)], attn=[1], ffn=[2]):
            raise RuntimeError("boom")
    assert _no_hooks(model)


def test_scores_on_known_patterns():
    T, n = 9, 4            # position 0 then a block of 4 tokens repeated: offset 1, period 4
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    assert probes.previous_token_score(prev) == 1 and probes.first_token_score(prev) == pytest.approx(1 / 8)
    sink = torch.zeros(T, T)
    sink[:, 0] = 1
    assert probes.first_token_score(sink) == 1 and probes.previous_token_score(sink) == pytest.approx(1 / 8)
    ind = torch.zeros(T, T)
    ind[:, 0] = 1
    i = torch.arange(1 + n, 1 + 2 * n)
    ind[i, 0] = 0
    ind[i, i - n + 1] = 1
    assert probes.induction_score(ind, n, offset=1) == 1 and probes.duplicate_token_score(ind, n, offset=1) == 0
    dup = torch.zeros(T, T)
    dup[:, 0] = 1
    dup[i, 0] = 0
    dup[i, i - n] = 1
    assert probes.duplicate_token_score(dup, n, offset=1) == 1 and probes.induction_score(dup, n, offset=1) == 0
    batch = torch.stack([ind, dup])[None]                 # (1, 2, T, T) -> (1, 2)
    assert probes.induction_score(batch, n, offset=1).tolist() == [[1.0, 0.0]]


def test_clear_errors():
    model, idx = _model("llama"), _idx()
    with pytest.raises(ValueError, match="layer 3 is not a block.*3 blocks"):
        with record(model, layers=[3]):
            pass
    with pytest.raises(ValueError, match=r"head 4 in layer 0 does not exist.*0\.\.3"):
        with ablate(model, heads=[(0, 4)]):
            pass
    with pytest.raises(ValueError, match="attn layer 7"):
        with ablate(model, attn=[7]):
            pass
    with pytest.raises(ValueError, match="mode='mean' needs means"):
        with ablate(model, heads=[(0, 0)], mode="mean"):
            pass
    with pytest.raises(ValueError, match="mode should be"):
        with ablate(model, mode="half"):
            pass
    with pytest.raises(ValueError, match=r"\(layer, head\) pairs"):
        with ablate(model, heads=[3]):
            pass
    with pytest.raises(probes.ShapeError, match="d_model=32"):
        logit_lens(model, torch.zeros(2, 5, 31))
    with torch.no_grad(), record(model, layers=[0]) as rec:
        model(idx)
    with pytest.raises(ValueError, match="layer 2 was not recorded"):
        attention_pattern(model, rec, 2)
    with pytest.raises(ValueError, match="not recorded"):
        rec.stream()
    with pytest.raises(ValueError, match="period 7"):
        probes.induction_score(torch.zeros(10, 10), 7)
    with pytest.raises(probes.ShapeError, match=r"\(\.\.\., T, T\)"):
        probes.previous_token_score(torch.zeros(3, 4))
    assert _no_hooks(model)


def test_next_token_logprobs():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
    lp = probes.next_token_logprobs(logits, torch.tensor([[0, 2]]))
    assert torch.allclose(lp, torch.log(torch.tensor([[0.5, 0.8]])))
    with pytest.raises(probes.ShapeError, match="targets"):
        probes.next_token_logprobs(logits, torch.tensor([[0, 2, 1]]))
