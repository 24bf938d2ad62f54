"""course_utils.modern: every option of notebook 15 against a reference, the default config is exactly notebook 08's
model, clear errors for combinations that do not make sense, Muon's Newton-Schulz against an SVD, the WSD schedule."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from course_utils import modern
from course_utils.data import small_corpus
from course_utils.generation import generate
from course_utils.model import GPTConfig, MiniGPT, gpt_param_count
from course_utils.modern import ReLU2, RMSNorm, SwiGLU, newton_schulz, param_count, swiglu_hidden, wsd_lr
from course_utils.positional import apply_rope
from course_utils.tokenizers import CharTokenizer
from course_utils.train import TrainSettings, lr_at, make_optimizer, preset, train

SMALL = dict(vocab_size=11, block_size=16, d_model=32, n_heads=4, n_layers=2)
OPTIONS = [dict(pos="rope"), dict(norm="rmsnorm"), dict(mlp="swiglu"), dict(mlp="relu2"), dict(qk_norm=True),
           dict(tied=False), dict(zero_init=True), dict(n_kv_heads=2), dict(n_kv_heads=1), dict(bias=False),
           dict(pos="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, tied=False, zero_init=True, n_kv_heads=2,
                bias=False)]


def _fingerprint(model: MiniGPT) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()[:16]


# ---- the default config is today's model --------------------------------------------------------------------------

@pytest.mark.parametrize("cfg, n, fp, loss", [
    (preset(96, "cpu")[0], 813_824, "c0ca98f87fac3591", 3.552037239074707),
    (GPTConfig(**SMALL), 26_336, "3aaeafcd4b4ab695", 2.0504467487335205)])
def test_default_config_is_exactly_notebook_08s_model(cfg, n, fp, loss):
    # fingerprints and losses recorded from the model code before notebook 15's options existed
    torch.manual_seed(0)
    m = MiniGPT(cfg)
    assert not modern.is_modern(cfg)
    assert m.num_params() == n == gpt_param_count(cfg.vocab_size, cfg.block_size, cfg.d_model, cfg.n_layers)
    assert _fingerprint(m) == fp                       # same parameters, same names, same initial values
    x = torch.arange(16).view(1, 16) % cfg.vocab_size
    assert m(x, x)[1].item() == pytest.approx(loss, abs=1e-6)
    assert m.lm_head is None and m.pos_emb is not None


def test_default_settings_train_as_notebook_08():
    s = TrainSettings(max_steps=100, lr=1e-3, warmup_steps=10)
    assert (s.schedule, s.optimizer, s.clock) == ("cosine", "adamw", "wall")
    m = MiniGPT(GPTConfig(**SMALL))
    assert type(make_optimizer(m, s)) is torch.optim.AdamW


# ---- each option ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_each_option_builds_counts_and_generates_with_the_cache(opts):
    cfg = GPTConfig(**SMALL, **opts)
    assert modern.is_modern(cfg)
    torch.manual_seed(0)
    m = MiniGPT(cfg)
    assert m.num_params() == param_count(cfg)
    x = torch.randint(0, 11, (2, 16))
    logits, loss = m(x, x)
    assert logits.shape == (2, 16, 11) and math.isfinite(loss.item())
    loss.backward()
    # the cache gives the same logits as the whole window
    m.eval()
    cache = [{} for _ in m.blocks]
    first, _ = m(x[:, :10], cache=cache)
    rest = [m(x[:, t:t + 1], cache=cache)[0] for t in range(10, 16)]
    full, _ = m(x)
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, atol=1e-5, rtol=1e-4)
    out = generate(m, x[:, :4], 8, greedy=True)
    assert out.shape == (2, 12)


def test_default_param_count_formula_agrees_with_notebook_08s():
    cfg = GPTConfig(**SMALL)
    assert param_count(cfg) == gpt_param_count(11, 16, 32, 2)


def test_rmsnorm_equals_torch():
    x = torch.randn(3, 5, 16) * 3 + 1
    ref = torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ref.weight.copy_(torch.rand(16) + 0.5)
    for fast in (False, True):
        mine = RMSNorm(16, eps=1e-6, fast=fast)
        mine.load_state_dict(ref.state_dict())
        torch.testing.assert_close(mine(x), ref(x))
    with pytest.raises(ValueError, match=r"RMSNorm expects \(\.\.\., 16\)"):
        RMSNorm(16)(torch.randn(2, 8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rmsnorm_written_out_derivative_equals_torchs(dtype):
    """The fast path (its derivative written out, on a CPU) against nn.RMSNorm: values, the gradient of the input and
    of the gain, also for a transposed view (the attention's per-head norm gets one) and a gradient that is one."""
    from course_utils.layers import _RMSNormCPU, rms_norm
    torch.manual_seed(0)
    ref = torch.nn.RMSNorm(32, eps=1e-6, dtype=dtype)
    with torch.no_grad():
        ref.weight.copy_(torch.rand(32) + 0.5)
    mine = RMSNorm(32, eps=1e-6).to(dtype)
    mine.load_state_dict(ref.state_dict())
    base = torch.randn(3, 4, 6, 32, dtype=dtype) * 3 + 1
    for x in (base, base.transpose(1, 2)):                       # contiguous, and a strided view
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        y1, y2 = mine(x1), ref(x2)
        assert y1.grad_fn.name() == "_RMSNormCPUBackward"         # the written-out path ran, not F.rms_norm
        torch.testing.assert_close(y1, y2)
        dy = torch.randn_like(y1).transpose(1, 2).contiguous().transpose(1, 2)   # a strided gradient too
        y1.backward(dy)
        y2.backward(dy)
        torch.testing.assert_close(x1.grad, x2.grad)
        torch.testing.assert_close(mine.weight.grad, ref.weight.grad)
        mine.weight.grad = ref.weight.grad = None
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    g = (torch.rand(8, dtype=torch.float64) + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: _RMSNormCPU.apply(a, b, 1e-6), (x, g))
    assert rms_norm(x.bfloat16(), g.bfloat16(), 1e-6).grad_fn.name() != "_RMSNormCPUBackward"   # half: torch's


def test_swiglu_has_the_parameters_of_the_gelu_layer_and_computes_its_formula():
    for d in (32, 48, 128, 384):
        h = swiglu_hidden(d)
        assert abs(3 * d * h - 8 * d * d) <= 1.5 * d        # equal weights up to rounding h to an integer
    f = SwiGLU(32, bias=False)
    gelu = sum(p.numel() for p in torch.nn.Linear(32, 128, bias=False).parameters()) * 2
    assert abs(sum(p.numel() for p in f.parameters()) - gelu) / gelu < 0.01
    x = torch.randn(2, 3, 32)
    want = (F.silu(x @ f.w1.weight.T) * (x @ f.w3.weight.T)) @ f.w2.weight.T
    torch.testing.assert_close(f(x), want)
    r = ReLU2(32, bias=False)
    torch.testing.assert_close(r(x), (torch.relu(x @ r.w1.weight.T) ** 2) @ r.w2.weight.T)


def test_relu_squared_has_the_values_and_gradients_of_autograds_version():
    from course_utils.layers import relu_squared
    h = torch.randn(4, 7, 16, dtype=torch.float64, requires_grad=True)
    h2 = h.detach().clone().requires_grad_(True)
    grad = torch.randn(4, 7, 16, dtype=torch.float64)
    y, want = relu_squared(h), F.relu(h2).square()
    torch.testing.assert_close(y, want, atol=0, rtol=0)
    y.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(h.grad, h2.grad, atol=0, rtol=0)
    assert torch.autograd.gradcheck(relu_squared, (torch.randn(3, 5, dtype=torch.float64, requires_grad=True),))


def test_rope_option_reuses_notebook_06s_rotation():
    cfg = GPTConfig(**SMALL, pos="rope")
    torch.manual_seed(0)
    m = MiniGPT(cfg).eval()
    a = m.blocks[0].attn
    x = torch.randn(1, 6, 32)
    q = a.w_q(x).view(1, 6, 4, 8).transpose(1, 2)
    k = a.w_k(x).view(1, 6, 4, 8).transpose(1, 2)
    v = a.w_v(x).view(1, 6, 4, 8).transpose(1, 2)
    out = F.scaled_dot_product_attention(apply_rope(q), apply_rope(k), v, is_causal=True)
    torch.testing.assert_close(a(x), a.w_o(out.transpose(1, 2).reshape(1, 6, 32)))
    assert m.pos_emb is None


def test_gqa_equals_attention_with_repeated_key_value_heads():
    cfg = GPTConfig(**SMALL, n_kv_heads=2)
    torch.manual_seed(0)
    a = MiniGPT(cfg).blocks[0].attn
    assert a.w_k.weight.shape == (16, 32)               # 2 key heads of size 8
    x = torch.randn(2, 5, 32)
    q = a.w_q(x).view(2, 5, 4, 8).transpose(1, 2)
    k = a.w_k(x).view(2, 5, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)   # heads 0,1 share key head 0
    v = a.w_v(x).view(2, 5, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(a(x), a.w_o(out.transpose(1, 2).reshape(2, 5, 32)))


def test_qk_norm_bounds_the_scores():
    cfg = GPTConfig(**SMALL, qk_norm=True, norm="rmsnorm")
    a = MiniGPT(cfg).blocks[0].attn
    x = torch.randn(1, 4, 32) * 100
    q = a.q_norm(a.w_q(x).view(1, 4, 4, 8))
    assert torch.allclose(q.pow(2).mean(-1), torch.ones(1, 4, 4), atol=1e-3)   # unit RMS whatever the scale of x


def test_untied_and_zero_init():
    torch.manual_seed(0)
    m = MiniGPT(GPTConfig(**SMALL, tied=False, zero_init=True))
    assert m.lm_head.weight.shape == (11, 32) and m.lm_head.weight is not m.tok_emb.weight
    for name, p in m.named_parameters():
        if name.endswith(("attn.w_o.weight", "ffn.w2.weight", "lm_head.weight")):
            assert torch.count_nonzero(p) == 0, name
    x = torch.randint(0, 11, (1, 8))
    logits, _ = m(x)
    assert torch.count_nonzero(logits) == 0            # a zero output layer: uniform prediction, loss ln V
    m2 = MiniGPT(GPTConfig(**SMALL, tied=False))
    assert m2.num_params() == gpt_param_count(11, 16, 32, 2) + 11 * 32


@pytest.mark.parametrize("kw, match", [
    (dict(pos="alibi"), "pos should be one of"),
    (dict(norm="batchnorm"), "norm should be one of"),
    (dict(mlp="geglu"), "mlp should be one of"),
    (dict(n_kv_heads=3), "must divide n_heads=4"),
    (dict(n_kv_heads=0), "positive int"),
    (dict(pos="rope", d_model=36, n_heads=4), "must be even"),
    (dict(d_model=30), "divisible by n_heads"),
    (dict(qk_norm=True, fast=False), "keep fast=True"),
    (dict(dropout=1.0), "dropout"),
    (dict(vocab_size=0), "vocab_size"),
])
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**SMALL, **kw})


@pytest.mark.parametrize("kw, match", [
    (dict(schedule="linear"), "schedule should be one of"),
    (dict(optimizer="sgd"), "optimizer should be one of"),
    (dict(cooldown=0.0), "cooldown"),
    (dict(optimizer="muon", muon_momentum=1.0), "muon_momentum"),
    (dict(clock="cpu"), "clock should be"),
])
def test_settings_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainSettings(max_steps=10, **kw)


# ---- Muon --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(8, 8), (6, 10), (12, 5)])
def test_newton_schulz_orthogonalises_like_the_svd(shape):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(*shape, generator=g, dtype=torch.float64)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    polar = U @ Vh                                          # the exact orthogonalisation U V^T
    # the cubic iteration converges to U V^T itself
    exact = newton_schulz(G.double(), steps=60, coeffs=modern.NS_CUBIC)
    torch.testing.assert_close(exact.double(), polar, atol=1e-4, rtol=0)
    # Muon's quintic: 5 steps put every singular value near 1 with the same singular vectors
    O = newton_schulz(G, steps=5).double()
    s = torch.linalg.svdvals(O)
    assert s.min() > 0.6 and s.max() < 1.25
    torch.testing.assert_close(U.T @ O @ Vh.T, torch.diag(torch.diagonal(U.T @ O @ Vh.T)), atol=1e-4, rtol=0)
    assert (O - polar).norm() / polar.norm() < 0.35
    with pytest.raises(ValueError, match="matrix"):
        newton_schulz(torch.randn(3))


def test_muon_step_moves_each_matrix_by_an_orthogonal_update():
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(6, 4))
    b = torch.nn.Parameter(torch.randn(4))
    opt = modern.Muon([{"params": [W], "muon": True}, {"params": [b]}], lr=0.1, momentum=0.0, betas=(0.9, 0.95))
    W.grad, b.grad = torch.randn(6, 4), torch.randn(4)
    before, gW = W.detach().clone(), W.grad.clone()
    opt.step()
    step = (before - W.detach()) / (0.1 * math.sqrt(6 / 4))
    torch.testing.assert_close(step, newton_schulz(gW))
    assert not torch.equal(b.detach(), torch.zeros(4))   # the vector took an AdamW step (tested below)
    with pytest.raises(ValueError, match="only 2-D"):
        modern.Muon([{"params": [b], "muon": True}])


def test_muon_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    p1 = torch.nn.Parameter(torch.randn(5, 3))
    p2 = torch.nn.Parameter(p1.detach().clone())
    mine = modern.Muon([{"params": [p1]}], lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    ref = torch.optim.AdamW([p2], lr=0.01, betas=(0.9, 0.95), weight_decay=0.1, eps=1e-8)
    for _ in range(5):
        g = torch.randn(5, 3)
        p1.grad, p2.grad = g.clone(), g.clone()
        mine.step()
        ref.step()
    torch.testing.assert_close(p1.detach(), p2.detach())


def test_muon_settings_give_muon_groups_and_training_lowers_the_loss():
    text = (small_corpus("animals") + " ") * 25
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text))
    tr, va = ids[:1400], ids[1400:]
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=16, d_model=32, n_heads=4, n_layers=2, pos="rope",
                    norm="rmsnorm", tied=False, zero_init=True)
    torch.manual_seed(0)
    m = MiniGPT(cfg)
    s = TrainSettings(max_steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_interval=20, eval_batches=2,
                      optimizer="muon", muon_lr=0.02, schedule="wsd")
    opt = make_optimizer(m, s)
    assert isinstance(opt, modern.Muon)
    muon_params = {id(p) for g in opt.param_groups if g["muon"] for p in g["params"]}
    names = {n for n, p in m.named_parameters() if id(p) in muon_params}
    assert names and all(n.startswith("blocks.") and n.endswith("weight") for n in names)
    assert "tok_emb.weight" not in names and "lm_head.weight" not in names
    res = train(m, tr, va, s, progress=False)
    assert res.val_loss < math.log(tok.vocab_size) - 0.7
    lrs = res.history["lr"]
    assert lrs[10] == pytest.approx(3e-3)                   # stable phase at the peak


def test_wsd_schedule():
    s = TrainSettings(max_steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1, schedule="wsd", cooldown=0.2)
    assert lr_at(0, 0.0, s) == pytest.approx(1e-4)
    assert lr_at(50, 0.5, s) == pytest.approx(1e-3)
    assert lr_at(80, 0.8, s) == pytest.approx(1e-3)
    assert lr_at(90, 0.9, s) == pytest.approx(0.55e-3)
    assert lr_at(100, 1.0, s) == pytest.approx(1e-4)
    assert wsd_lr(5, 0.0, 1.0, 10, 0.0, 0.5) == pytest.approx(0.6)


def test_process_clock_budget():
    s = TrainSettings(minutes=0.001, clock="process")
    assert modern.clock(s) is modern.time_process
    assert modern.clock(replace(s, clock="wall")) is modern.time_wall


def test_newton_schulz_on_a_stack_equals_one_call_per_matrix():
    g = torch.Generator().manual_seed(3)
    for shape in ((4, 8, 8), (3, 6, 10), (2, 12, 5)):
        G = torch.randn(*shape, generator=g) * torch.tensor([1.0, 30.0, 0.01, 2.0][:shape[0]])[:, None, None]
        together = newton_schulz(G)
        assert together.shape == G.shape
        for i in range(shape[0]):        # each matrix keeps its own norm: the scales above do not leak across
            torch.testing.assert_close(together[i], newton_schulz(G[i]), atol=2e-6, rtol=1e-5)
    with pytest.raises(ValueError, match=r"stack of them \(k, m, n\), got \(2, 3, 4, 5\)"):
        newton_schulz(torch.randn(2, 3, 4, 5))


def test_muon_step_with_shared_shapes_equals_a_per_matrix_reference():
    """Matrices of one shape are orthogonalised together; the result is each one's own Muon step."""
    torch.manual_seed(0)
    shapes = [(6, 4), (6, 4), (4, 6), (6, 4), (3, 3)]
    mine = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
    ref = [p.detach().clone() for p in mine]
    momenta = [torch.zeros_like(p) for p in ref]
    lr, mu, wd = 0.05, 0.9, 0.1
    opt = modern.Muon([{"params": mine, "muon": True}], lr=lr, momentum=mu, weight_decay=wd)
    for _ in range(3):
        grads = [torch.randn(*s) for s in shapes]
        for p, gr in zip(mine, grads, strict=True):
            p.grad = gr.clone()
        opt.step()
        for i, gr in enumerate(grads):          # the update written for one matrix at a time
            momenta[i] = mu * momenta[i] + gr
            u = newton_schulz(gr + mu * momenta[i])
            ref[i] = ref[i] * (1 - lr * wd) - lr * max(1.0, shapes[i][0] / shapes[i][1]) ** 0.5 * u
    for p, r in zip(mine, ref, strict=True):
        torch.testing.assert_close(p.detach(), r, atol=1e-5, rtol=1e-5)


def test_cpu_bf16_autocast_runs_rope_and_attention_in_fp32_and_stays_close_to_fp32(monkeypatch):
    """Under bf16 autocast on a CPU the projections run in bf16, but every layer's attention gets fp32 queries,
    keys and values with autocast off inside (the CPU's bf16 attention is slower); loss and gradients stay fp32."""
    cfg = GPTConfig(**SMALL, **{**OPTIONS[-1], "zero_init": False})      # zero-initialised logits would all be 0
    torch.manual_seed(0)
    model = MiniGPT(cfg)
    x, y = torch.randint(0, 11, (3, 16)), torch.randint(0, 11, (3, 16))
    seen, real = [], F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return real(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    ref_logits, ref_loss = model(x, y)
    ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()))
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(x, y)
        assert model.blocks[0].attn.w_q(torch.randn(2, 32)).dtype == torch.bfloat16   # projections: bf16
    assert seen == [(torch.float32, torch.float32, torch.float32, False)] * cfg.n_layers
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert loss.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-2)
    assert (logits.float() - ref_logits).abs().max() < 0.05 * ref_logits.abs().max()
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g - r).norm() <= 0.05 * r.norm() + 1e-6            # bf16 keeps 8 significant bits: <= 0.4% per number
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):   # generation's cached path too
        cache_out = generate(model, torch.zeros(1, 1, dtype=torch.long), 5, greedy=True)
    assert cache_out.shape == (1, 6)


def test_cpu_bf16_training_tracks_fp32_training(monkeypatch):
    """TrainSettings(cpu_bf16=True) trains through runtime.autocast (forced on here, whatever this CPU has): the
    weights stay fp32 and the curve follows the fp32 run's; with the CPU said to lack bf16 the run is exactly fp32."""
    from course_utils import runtime
    text = (small_corpus("animals") + " ") * 25
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text))
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=16, d_model=32, n_heads=4, n_layers=2, **OPTIONS[-1])
    s = TrainSettings(max_steps=30, batch_size=8, lr=3e-3, warmup_steps=5, eval_interval=30, eval_batches=2,
                      optimizer="muon", muon_lr=0.02, schedule="wsd")

    def run(cpu_bf16: bool, native: bool):
        monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: native)
        torch.manual_seed(0)
        return train(MiniGPT(cfg), ids[:1400], ids[1400:], replace(s, cpu_bf16=cpu_bf16), progress=False)

    fp32, bf16, no_bf16 = run(False, True), run(True, True), run(True, False)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    assert bf16.history["train"] != fp32.history["train"]                  # bf16 did run ...
    assert bf16.val_loss == pytest.approx(fp32.val_loss, rel=0.03)         # ... and learned as much
    assert bf16.val_loss < math.log(tok.vocab_size) - 0.7
    assert no_bf16.history["train"] == fp32.history["train"]               # no bf16 instructions: fp32, exactly
