"""course_utils.lora: LoRA by hand, proven against plain PyTorch layers, with its error paths."""

import copy

import pytest
import torch
import torch.nn as nn

from course_utils.errors import ShapeError
from course_utils.lora import (
    ATTENTION,
    FFN,
    LoRALinear,
    adam_training_bytes,
    add_lora,
    energy_in_top,
    lora_layers,
    lora_param_count,
    low_rank_approx,
    merge_lora,
    optimizer_state_bytes,
    singular_values,
    trainable_counts,
    weights_checksum,
)
from course_utils.model import GPTConfig, MiniGPT


def tiny_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=11, block_size=8, d_model=16, n_heads=2, n_layers=2)
    cfg.update(kw)
    return MiniGPT(GPTConfig(**cfg)).eval()


def randomize_B(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.B.copy_(torch.randn(layer.B.shape, generator=g) * 0.1)


# ---- LoRALinear ----------------------------------------------------------------------------------------------

def test_lora_linear_starts_bit_identical_and_freezes_the_base():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    ref = copy.deepcopy(base)
    layer = LoRALinear(base, r=2, alpha=4)
    x = torch.randn(3, 4, 6)
    assert torch.equal(layer(x), ref(x))
    assert layer.A.shape == (2, 6) and layer.B.shape == (5, 2)
    assert layer.A.abs().sum() > 0 and layer.B.abs().sum() == 0          # A random, B zero
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert layer.A.requires_grad and layer.B.requires_grad
    assert layer.scale == 2.0 and "r=2" in repr(layer)


def test_lora_linear_equals_the_formula_and_a_merged_nn_linear():
    torch.manual_seed(0)
    base = nn.Linear(7, 3)
    layer = LoRALinear(base, r=2, alpha=3.0)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(5, 7)
    want = x @ base.weight.T + base.bias + (3.0 / 2) * (x @ layer.A.T @ layer.B.T)
    torch.testing.assert_close(layer(x), want)
    torch.testing.assert_close(layer.delta_weight(), 1.5 * layer.B @ layer.A)
    assert torch.linalg.matrix_rank(layer.delta_weight()) <= 2
    merged = layer.merged()
    assert isinstance(merged, nn.Linear) and merged.weight.shape == (3, 7)
    torch.testing.assert_close(merged(x), layer(x), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(merged.bias, base.bias)


def test_lora_linear_without_bias_and_default_alpha():
    base = nn.Linear(4, 4, bias=False)
    layer = LoRALinear(base, r=4)
    assert layer.alpha == 4.0 and layer.scale == 1.0
    assert layer.merged().bias is None
    x = torch.randn(2, 4)
    assert torch.equal(layer(x), base(x))


def test_lora_linear_gradients_reach_only_A_and_B():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(5, 5), r=2)
    with torch.no_grad():
        layer.B.fill_(0.1)
    layer(torch.randn(3, 5)).pow(2).sum().backward()
    assert layer.A.grad is not None and layer.B.grad is not None
    assert layer.base.weight.grad is None and layer.base.bias.grad is None


def test_lora_linear_errors():
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1), r=1)
    with pytest.raises(ValueError, match="between 1 and min"):
        LoRALinear(nn.Linear(4, 3), r=4)
    with pytest.raises(ValueError, match="between 1 and min"):
        LoRALinear(nn.Linear(4, 3), r=0)
    with pytest.raises(TypeError, match="whole number"):
        LoRALinear(nn.Linear(4, 3), r=1.5)
    with pytest.raises(ValueError, match="alpha should be a positive"):
        LoRALinear(nn.Linear(4, 3), r=1, alpha=0)
    layer = LoRALinear(nn.Linear(4, 3), r=1)
    with pytest.raises(ShapeError, match=r"\(\.\.\., d_in=4\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(ShapeError):
        layer([1.0, 2.0])


# ---- a whole MiniGPT -----------------------------------------------------------------------------------------

def test_add_lora_wraps_the_attention_and_counts_match_the_formula():
    base = tiny_gpt()
    model = copy.deepcopy(base)
    names = add_lora(model, r=3, alpha=6)
    assert names == [f"blocks.{i}.attn.{w}" for i in range(2) for w in ("w_q", "w_k", "w_v", "w_o")]
    assert set(lora_layers(model)) == set(names)
    trainable, total = trainable_counts(model)
    assert trainable == lora_param_count([(16, 16)] * 8, 3) == 8 * 3 * (16 + 16)
    assert total == base.num_params() + trainable
    idx = torch.randint(0, 11, (2, 8))
    assert torch.equal(model(idx)[0], base(idx)[0])                   # step 0: bit-identical


def test_add_lora_with_the_ffn_and_chosen_targets():
    model = tiny_gpt()
    names = add_lora(model, r=2, ffn=True)
    assert len(names) == 2 * (len(ATTENTION) + len(FFN))
    assert trainable_counts(model)[0] == 2 * (4 * 2 * 32 + 2 * (16 + 64) * 2)
    model2 = tiny_gpt()
    assert add_lora(model2, r=1, targets=("attn.w_q", "attn.w_v")) == [
        "blocks.0.attn.w_q", "blocks.0.attn.w_v", "blocks.1.attn.w_q", "blocks.1.attn.w_v"]


def test_add_lora_errors():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(model, r=2, targets=("nothing",))
    with pytest.raises(ValueError, match="at least one target"):
        add_lora(model, r=2, targets=())
    with pytest.raises(ValueError, match="between 1 and min"):
        add_lora(tiny_gpt(), r=17)
    add_lora(model, r=2)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, r=2)


def test_training_moves_only_the_adapters_and_keeps_the_checksum():
    base = tiny_gpt()
    model = copy.deepcopy(base)
    add_lora(model, r=2)
    before = weights_checksum(model)
    assert before == weights_checksum(base)                           # base weights named as unwrapped
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 11, (4, 8))
    for _ in range(3):
        _, loss = model(idx, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert weights_checksum(model) == before
    assert weights_checksum(model, include_lora=True) != weights_checksum(base, include_lora=True)
    assert not torch.equal(model(idx)[0], base(idx)[0])               # but the function changed
    assert optimizer_state_bytes(opt) > 0


def test_checksum_sees_a_single_changed_bit():
    a, b = tiny_gpt(), tiny_gpt()
    assert weights_checksum(a) == weights_checksum(b)
    with torch.no_grad():
        b.blocks[0].ffn.w1.weight[0, 0] = torch.nextafter(b.blocks[0].ffn.w1.weight[0, 0], torch.tensor(1.0))
    assert weights_checksum(a) != weights_checksum(b)


def test_merge_gives_the_same_logits_as_the_adapters():
    model = tiny_gpt()
    add_lora(model, r=2, alpha=4, ffn=True)
    randomize_B(model)
    idx = torch.randint(0, 11, (3, 8))
    with torch.no_grad():
        want = model(idx)[0]
        merged = merge_lora(copy.deepcopy(model))
        got = merged(idx)[0]
    assert not lora_layers(merged)
    assert (got - want).abs().max() < 1e-5
    assert type(merged.blocks[0].attn.w_q) is nn.Linear
    with pytest.raises(ValueError, match="no LoRA adapters"):
        merge_lora(merged)


def test_optimizer_state_bytes_matches_adam_moments():
    lin = nn.Linear(10, 4)
    opt = torch.optim.AdamW(lin.parameters())
    assert optimizer_state_bytes(opt) == 0                            # Adam builds its state at the first step
    lin(torch.randn(2, 10)).sum().backward()
    opt.step()
    n = sum(p.numel() for p in lin.parameters())
    # two fp32 moments per number, plus one 4-byte step counter per parameter tensor
    assert optimizer_state_bytes(opt) == 8 * n + 4 * 2


# ---- counting and memory -------------------------------------------------------------------------------------

def test_lora_param_count_and_errors():
    assert lora_param_count([(4096, 4096)] * 2, 8) == 2 * 8 * 8192
    assert lora_param_count([(10, 3)], 3) == 39
    assert lora_param_count([], 4) == 0
    with pytest.raises(ShapeError, match="d_out, d_in"):
        lora_param_count([(3, 4, 5)], 1)
    with pytest.raises(ValueError, match="between 1 and min"):
        lora_param_count([(10, 3)], 4)


def test_adam_training_bytes_accounting():
    full = adam_training_bytes(1000)
    assert full == {"weights": 2000, "gradients": 2000, "master copy": 4000, "Adam moments": 8000,
                    "total": 16000}
    lora = adam_training_bytes(1000, 10)
    assert lora["total"] == 2 * 990 + 16 * 10           # 2 bytes per frozen number, 16 per trained one
    assert adam_training_bytes(100, 100, weight_bytes=4, grad_bytes=4, master_bytes=0)["total"] == 1600
    with pytest.raises(ValueError, match="cannot exceed"):
        adam_training_bytes(10, 11)
    with pytest.raises(ValueError, match="whole number"):
        adam_training_bytes(-1)
    with pytest.raises(ValueError, match="whole number"):
        adam_training_bytes(10, 2.5)


# ---- singular values -----------------------------------------------------------------------------------------

def test_singular_values_match_torch_and_errors():
    w = torch.randn(6, 4)
    torch.testing.assert_close(singular_values(w), torch.linalg.svdvals(w.double()))
    with pytest.raises(ShapeError, match="matrix"):
        singular_values(torch.randn(3))


def test_energy_and_low_rank_approx_on_a_known_matrix():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    s = torch.tensor([4.0, 2.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    w = (u[:, :6] * s) @ v.T
    sv = singular_values(w)
    assert abs(energy_in_top(sv, 1) - 16 / 21) < 1e-12
    assert abs(energy_in_top(sv, 3) - 1.0) < 1e-12
    w2 = low_rank_approx(w, 2)
    assert torch.linalg.matrix_rank(w2) == 2
    assert abs(torch.linalg.norm(w - w2).item() - 1.0) < 1e-9       # Eckart-Young: the error is s_3
    torch.testing.assert_close(low_rank_approx(w, 3), w)
    with pytest.raises(ValueError, match="between 1 and"):
        energy_in_top(sv, 0)
    with pytest.raises(ValueError, match="between 1 and"):
        low_rank_approx(w, 7)
    with pytest.raises(ShapeError):
        energy_in_top(w, 1)
    with pytest.raises(ShapeError):
        low_rank_approx(torch.randn(2, 2, 2), 1)
