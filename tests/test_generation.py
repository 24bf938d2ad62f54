"""course_utils.generation: the filters match their definitions, the key-value cache changes nothing, and bad
input gets a message that names what was expected."""

from __future__ import annotations

import itertools

import pytest
import torch

from course_utils import generation
from course_utils.errors import ShapeError
from course_utils.generation import (
    CacheTiming,
    apply_temperature,
    attention_maps,
    generate,
    generate_no_cache,
    greedy,
    next_token,
    next_token_distribution,
    probabilities,
    sample,
    time_generation,
    top_k_filter,
    top_p_filter,
)
from course_utils.model import GPTConfig, MiniGPT


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = MiniGPT(GPTConfig(vocab_size=11, block_size=16, d_model=32, n_heads=4, n_layers=2))
    with torch.no_grad():   # larger weights than the init, so the logits are far from uniform
        for p in m.parameters():
            p.mul_(8.0) if p.dim() > 1 else None
    return m


# ---- greedy and temperature -----------------------------------------------------------------------------------

def test_greedy_is_argmax_and_keeps_leading_dims():
    logits = torch.randn(2, 3, 7)
    ids = greedy(logits)
    assert ids.shape == (2, 3) and ids.dtype == torch.long
    assert torch.equal(ids, logits.argmax(-1))
    assert greedy(torch.tensor([0.1, 2.0, -1.0])).item() == 1


def test_temperature_divides_logits():
    z = torch.randn(4, 9)
    assert torch.allclose(apply_temperature(z, 0.5), z * 2)
    assert torch.allclose(apply_temperature(z, 2.0), z / 2)
    assert torch.equal(apply_temperature(z, 1.0), z)


def test_low_temperature_approaches_greedy_high_approaches_uniform():
    z = torch.randn(5, 20, generator=torch.Generator().manual_seed(0))
    z[torch.arange(5), z.argmax(-1)] += 0.5             # a clear winner in every row, whatever the draw
    top2 = z.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 0.02      # at T = 1e-3 a gap of 0.02 leaves the runner-up e^-20
    cold = probabilities(z, temperature=1e-3)
    assert torch.allclose(cold, torch.nn.functional.one_hot(z.argmax(-1), 20).float(), atol=1e-6)
    hot = probabilities(z, temperature=1e4)
    assert torch.allclose(hot, torch.full_like(hot, 1 / 20), atol=1e-3)
    # the entropy falls as the temperature falls
    ents = [-(p * p.clamp_min(1e-30).log()).sum(-1).mean().item()
            for p in (probabilities(z, temperature=t) for t in (4.0, 1.0, 0.5, 0.1))]
    assert ents == sorted(ents, reverse=True)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample(z, temperature=1e-3, generator=g), greedy(z))


# ---- top-k ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_keeps_exactly_the_k_largest(k):
    z = torch.randn(4, 6, 10)
    out = top_k_filter(z, k)
    kept = torch.isfinite(out)
    assert out.shape == z.shape
    assert (kept.sum(-1) == k).all()
    assert torch.equal(out[kept], z[kept])                      # kept logits unchanged
    smallest_kept = torch.where(kept, z, torch.inf).amin(-1)
    largest_dropped = torch.where(kept, -torch.inf, z).amax(-1)
    assert (smallest_kept >= largest_dropped).all()


def test_top_k_with_ties_still_keeps_exactly_k():
    z = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
    out = top_k_filter(z, 2)
    assert torch.isfinite(out).sum() == 2
    assert set(out[torch.isfinite(out)].tolist()) == {3.0}


def test_top_k_probabilities_renormalise():
    z = torch.randn(3, 8)
    p = probabilities(z, top_k=3)
    assert torch.allclose(p.sum(-1), torch.ones(3))
    assert ((p > 0).sum(-1) == 3).all()
    full = torch.softmax(z, -1)
    mask = p > 0
    assert torch.allclose(p[mask], (full * mask / (full * mask).sum(-1, keepdim=True))[mask])


# ---- top-p ----------------------------------------------------------------------------------------------------

def _smallest_set_with_mass(probs: torch.Tensor, p: float) -> set[int]:
    """Brute force over the definition: among all sets with mass >= p, the smallest, best by mass."""
    V = len(probs)
    for size in range(1, V + 1):
        best = max(itertools.combinations(range(V), size), key=lambda s: probs[list(s)].sum().item())
        if probs[list(best)].sum().item() >= p:
            return set(best)
    return set(range(V))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8, 0.95, 1.0])
def test_top_p_keeps_the_smallest_set_with_mass_at_least_p(p):
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        z = torch.randn(7, generator=gen) * 2
        probs = torch.softmax(z, -1)
        kept = set(torch.isfinite(top_p_filter(z, p)).nonzero().flatten().tolist())
        want = _smallest_set_with_mass(probs, p)
        assert kept == want, (p, probs.tolist())
        assert probs[list(kept)].sum() >= p - 1e-6


def test_top_p_examples_and_batches():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    z = probs.log()
    assert torch.isfinite(top_p_filter(z, 0.45)).tolist() == [[True, False, False, False],
                                                             [False, False, False, True]]
    assert torch.isfinite(top_p_filter(z, 0.6)).tolist() == [[True, True, False, False],
                                                             [False, False, True, True]]
    assert torch.isfinite(top_p_filter(z, 0.01)).sum(-1).tolist() == [1, 1]   # the top token is always kept
    p = probabilities(z, top_p=0.75)
    assert torch.allclose(p[0], torch.tensor([0.5, 0.3, 0.0, 0.0]) / 0.8)


def test_top_k_then_top_p_order():
    z = torch.tensor([3.0, 2.0, 1.0, 0.0])
    # top-k 2 first, then top-p on the renormalised two: keeps only the first when p is small
    p = probabilities(z, top_k=2, top_p=0.5)
    assert (p > 0).tolist() == [True, False, False, False]


# ---- sampling -------------------------------------------------------------------------------------------------

def test_seeded_sampling_is_reproducible_and_follows_the_distribution():
    z = torch.tensor([2.0, 1.0, 0.0, -1.0])
    a = sample(z.expand(5000, 4), generator=torch.Generator().manual_seed(7))
    b = sample(z.expand(5000, 4), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    freq = torch.bincount(a, minlength=4).float() / 5000
    assert torch.allclose(freq, torch.softmax(z, -1), atol=0.03)
    ids = sample(torch.randn(2, 3, 5), top_k=2, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (2, 3)


def test_sampling_never_picks_a_filtered_token():
    z = torch.randn(2000, 6)
    ids = sample(z, top_k=2, generator=torch.Generator().manual_seed(0))
    top2 = z.topk(2, -1).indices
    assert (top2 == ids[:, None]).any(-1).all()


def test_next_token_switches_between_greedy_and_sampling():
    z = torch.randn(3, 10)
    assert torch.equal(next_token(z, greedy=True), z.argmax(-1))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(next_token(z, generator=g1), sample(z, generator=g2))


# ---- generation with and without the cache ---------------------------------------------------------------------

def test_greedy_with_cache_equals_without_token_for_token(model):
    idx = torch.randint(0, 11, (3, 4), generator=torch.Generator().manual_seed(0))
    n = model.config.block_size - 4            # exactly fills the context: the cache is used all the way
    with_cache = generate(model, idx, n, greedy=True)
    without = generate_no_cache(model, idx, n, greedy=True)
    assert with_cache.shape == (3, 16)
    assert torch.equal(with_cache[:, :4], idx)
    assert torch.equal(with_cache, without)
    # and the same as the plainest possible loop
    ref = idx
    for _ in range(n):
        logits, _ = model(ref)
        ref = torch.cat([ref, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(with_cache, ref)


def test_generation_past_block_size_crops_and_still_matches(model):
    idx = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(1))
    n = 3 * model.config.block_size            # far past the context: falls back to the cropped window
    a = generate(model, idx, n, greedy=True)
    b = generate_no_cache(model, idx, n, greedy=True)
    assert a.shape == (2, 5 + n)
    assert torch.equal(a, b)
    # every token past the window is the greedy choice for the last block_size tokens before it
    t = a.shape[1] - 1
    logits, _ = model(a[:, t - model.config.block_size:t])
    assert torch.equal(logits[:, -1].argmax(-1), a[:, t])


def test_seeded_sampled_generation_is_reproducible_and_cache_free(model):
    idx = torch.zeros(2, 1, dtype=torch.long)
    kw = dict(temperature=0.8, top_k=5, top_p=0.9)
    a = generate(model, idx, 40, generator=torch.Generator().manual_seed(0), **kw)
    b = generate(model, idx, 40, generator=torch.Generator().manual_seed(0), **kw)
    c = generate(model, idx, 40, generator=torch.Generator().manual_seed(0), use_cache=False, **kw)
    assert torch.equal(a, b) and torch.equal(a, c)
    d = generate(model, idx, 40, generator=torch.Generator().manual_seed(1), **kw)
    assert not torch.equal(a, d)


def test_generate_restores_training_mode_and_zero_tokens(model):
    model.train()
    idx = torch.ones(1, 3, dtype=torch.long)
    out = generate(model, idx, 0)
    assert torch.equal(out, idx)
    generate(model, idx, 2, greedy=True)
    assert model.training
    model.eval()


def test_generate_without_cache_at_full_context_matches_model_generate(model):
    idx = torch.randint(0, 11, (1, 3), generator=torch.Generator().manual_seed(2))
    a = generate(model, idx, 20, temperature=0.7, top_k=4, generator=torch.Generator().manual_seed(5),
                 use_cache=False)
    b = model.generate(idx, 20, temperature=0.7, top_k=4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


# ---- looking inside ------------------------------------------------------------------------------------------

def test_next_token_distribution(model):
    idx = torch.tensor([1, 2, 3])
    p = next_token_distribution(model, idx)
    assert p.shape == (11,) and torch.isclose(p.sum(), torch.tensor(1.0))
    logits, _ = model(idx[None])
    assert torch.allclose(p, torch.softmax(logits[0, -1], -1), atol=1e-6)
    assert (next_token_distribution(model, idx, top_k=3) > 0).sum() == 3
    with pytest.raises(ShapeError, match=r"one prompt"):
        next_token_distribution(model, torch.zeros(2, 3, dtype=torch.long))


def test_attention_maps(model):
    idx = torch.tensor([1, 2, 3, 4, 5, 6])
    maps = attention_maps(model, idx)
    assert maps.shape == (2, 4, 6, 6)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4, 6))
    assert (maps.triu(1) == 0).all()                                  # causal: nothing from the future
    assert all(not b.attn.keep_weights and b.attn.last_weights is None for b in model.blocks)
    with pytest.raises(ShapeError, match="block_size=16"):
        attention_maps(model, torch.zeros(17, dtype=torch.long))


def test_time_generation_reports_same_tokens(model):
    t = time_generation(model, torch.zeros(1, 2, dtype=torch.long), 10, repeats=1, warmup=False)
    assert isinstance(t, CacheTiming) and t.same_tokens and t.new_tokens == 10
    assert t.speedup > 0 and t.tokens_per_s_cache > 0 and "tokens/s" in str(t)
    with pytest.raises(ValueError, match="repeats"):
        time_generation(model, torch.zeros(1, 2, dtype=torch.long), 10, repeats=0)


# ---- errors name what was expected ----------------------------------------------------------------------------

def test_filter_errors_name_the_expected_values():
    z = torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"temperature should be a finite number > 0.*greedy"):
        apply_temperature(z, 0)
    with pytest.raises(ValueError, match="temperature"):
        probabilities(z, temperature=-1.0)
    with pytest.raises(TypeError, match="temperature should be a number"):
        apply_temperature(z, "hot")
    with pytest.raises(ValueError, match=r"top_k should be between 1 and V=5"):
        top_k_filter(z, 6)
    with pytest.raises(ValueError, match=r"top_k should be between 1 and V=5"):
        top_k_filter(z, 0)
    with pytest.raises(TypeError, match="top_k should be an int"):
        top_k_filter(z, 2.5)
    with pytest.raises(ValueError, match=r"top_p should be in \(0, 1\]"):
        top_p_filter(z, 0.0)
    with pytest.raises(ValueError, match=r"top_p should be in \(0, 1\]"):
        top_p_filter(z, 1.5)
    with pytest.raises(ShapeError, match=r"\(\.\.\., V\)"):
        greedy(torch.tensor(3.0))
    with pytest.raises(ShapeError, match=r"\(\.\.\., V\)"):
        top_k_filter([1.0, 2.0], 1)
    with pytest.raises(TypeError, match="floating point"):
        top_p_filter(torch.tensor([1, 2, 3]), 0.5)


def test_generate_errors_name_the_expected_shapes(model):
    with pytest.raises(ShapeError, match=r"\(B, T\).*idx\[None\]"):
        generate(model, torch.tensor([1, 2, 3]), 5)
    with pytest.raises(TypeError, match="integer token ids"):
        generate(model, torch.zeros(1, 3), 5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="top_k should be between 1 and V=11"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 5, top_k=20)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 5, temperature=0.0)
    with pytest.raises(TypeError, match="MiniGPT"):
        generate(torch.nn.Linear(2, 2), torch.zeros(1, 3, dtype=torch.long), 5)
    # greedy decoding ignores the sampling settings, so temperature 0 is fine there
    assert generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=0.0, greedy=True).shape == (1, 5)


def test_generated_ids_can_feed_training(model):
    out = generate(model, torch.zeros(2, 2, dtype=torch.long), 6, greedy=True)
    assert not out.is_inference()
    model.train()
    _, loss = model(out[:, :-1], out[:, 1:])
    loss.backward()                      # would fail on an inference-mode tensor
    model.zero_grad()
    model.eval()


# ---- the plotting and widget helpers of notebook 09 --------------------------------------------------------------

def test_plot_helpers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.plots import char_label, plot_attention_heads, plot_token_distribution

    assert char_label(" ") == "␣" and char_label("\n") == "\\n" and char_label("a") == "a"
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2])
    ax = plot_token_distribution(probs, list("abcd"), top=3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "c", "d"]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match=r"\(V,\)"):
        plot_token_distribution(probs, list("abc"))
    maps = torch.softmax(torch.randn(2, 3, 5, 5), -1)
    fig = plot_attention_heads(maps, list("hello"))
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match=r"\(n_layers, n_heads, T, T\)"):
        plot_attention_heads(maps, list("hi"))
    plt.close("all")


def test_generation_explorer(model, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.tokenizers import CharTokenizer
    from course_utils.widgets import generation_explorer

    tok = CharTokenizer("abcdefghij ")           # 11 symbols, the test model's vocabulary
    box = generation_explorer(model, tok, prompt="abc", max_new_tokens=5)
    text, sliders, out = box.children
    temperature, top_k, top_p = sliders.children
    assert top_k.max == 11 and text.value == "abc" and top_p.value == 1.0
    temperature.value = 0.5                       # moving a slider redraws without error
    top_k.value = 3
    top_k.value = 11
    capsys.readouterr()
    top_p.value = 0.05                            # a tiny nucleus keeps the most likely token only: greedy
    printed = capsys.readouterr().out             # (outside a kernel the Output widget lets prints through)
    greedy_text = tok.decode(generate(model, torch.tensor([tok.encode("abc")]), 5, greedy=True)[0, 3:].tolist())
    assert f"sample: abc|{greedy_text}" in printed
    text.value = "xyz"                            # unknown characters: a message, not a crash


def test_step_times(model):
    from course_utils.generation import step_times

    for use_cache in (True, False):
        t = step_times(model, torch.zeros(1, 3, dtype=torch.long), 7, use_cache=use_cache)
        assert len(t) == 7 and all(x > 0 for x in t)
    assert model.training is False


def test_threads_are_restored(model):
    from course_utils.generation import torch_threads

    before = torch.get_num_threads()
    generate(model, torch.zeros(1, 2, dtype=torch.long), 20, greedy=True)   # past block_size: both phases
    assert torch.get_num_threads() == before
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with torch_threads(0):
            pass


@pytest.mark.parametrize("fast", [True, False])
def test_decode_step_equals_the_models_cached_forward(fast):
    """The straight-line decoding step computes the same logits and cache as the model's own forward."""
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig(vocab_size=40, block_size=24, d_model=32, n_heads=4, n_layers=2, fast=fast)).eval()
    idx = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full, _ = model(idx)
        lean = [{} for _ in model.blocks]
        reference = [{} for _ in model.blocks]
        model(idx[:, :10], cache=lean)
        model(idx[:, :10], cache=reference)
        layers = generation.decode_weights(model)
        for t in range(10, 16):
            got = generation.decode_step(model, idx[:, t:t + 1], lean, layers)
            want, _ = model(idx[:, t:t + 1], cache=reference)
            assert got.shape == (2, 1, 40)
            assert (got - want).abs().max() < 1e-5
            assert (got - full[:, t:t + 1]).abs().max() < 1e-5
    for a, b in zip(lean, reference, strict=True):
        assert torch.allclose(a["k"], b["k"], atol=1e-6) and torch.allclose(a["v"], b["v"], atol=1e-6)


def test_decode_weights_declines_non_standard_blocks():
    model = MiniGPT(GPTConfig(vocab_size=10, block_size=8, d_model=16, n_heads=2, n_layers=1))
    assert generation.decode_weights(model) is not None
    model.blocks[0].residual = False
    assert generation.decode_weights(model) is None
