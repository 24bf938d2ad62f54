"""course_utils.mlm: BERT's masking rule, the bidirectional encoder, fill-in-the-blanks."""

import pytest
import torch
import torch.nn as nn

from course_utils.errors import ShapeError
from course_utils.mlm import IGNORE, MiniBERT, apply_masking, fill_in, mask_tokens
from course_utils.model import GPTConfig, MiniGPT


def test_apply_masking_follows_the_80_10_10_rule():
    ids = torch.tensor([5, 6, 7, 8, 9])
    chosen = torch.tensor([True, True, True, False, True])
    u = torch.tensor([0.1, 0.85, 0.95, 0.1, 0.79999])
    rnd = torch.tensor([1, 2, 3, 4, 0])
    inputs, targets = apply_masking(ids, chosen, u, rnd, mask_id=42)
    assert inputs.tolist() == [42, 2, 7, 8, 42]
    assert targets.tolist() == [5, 6, 7, IGNORE, 9]


def test_apply_masking_bad_input():
    ids = torch.arange(4)
    with pytest.raises(ShapeError, match="chosen"):
        apply_masking(ids, torch.ones(3, dtype=torch.bool), torch.rand(4), ids, 9)
    with pytest.raises(TypeError, match="boolean"):
        apply_masking(ids, torch.ones(4), torch.rand(4), ids, 9)


def test_mask_tokens_rates():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(50, (200, 100), generator=g)
    inputs, targets = mask_tokens(ids, mask_id=50, n_real=50, generator=g)
    chosen = targets != IGNORE
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    assert (targets[chosen] == ids[chosen]).all()
    masked = (inputs == 50) & chosen
    changed = (inputs != ids) & (inputs != 50) & chosen
    assert (inputs[~chosen] == ids[~chosen]).all()                           # unchosen positions untouched
    n = chosen.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    # a random symbol equals the original 1 time in 50, so about 9.8% of the chosen ones change to another symbol
    assert abs(changed.sum().item() / n - 0.1 * 49 / 50) < 0.015
    assert inputs.max() <= 50 and (inputs[changed] < 50).all()              # random symbols are never the mask


def test_mask_tokens_bad_input():
    with pytest.raises(ValueError, match="between 0 and 1"):
        mask_tokens(torch.arange(5), 9, 9, p=1.5)
    with pytest.raises(TypeError):
        mask_tokens(torch.rand(5), 9, 9)


def _bert(seed=0):
    torch.manual_seed(seed)
    return MiniBERT(GPTConfig(vocab_size=11, block_size=16, d_model=32, n_heads=4, n_layers=2, fast=False)).eval()


def test_encoder_sees_both_sides_and_gpt_does_not():
    bert = _bert()
    gpt = MiniGPT(bert.config).eval()
    gpt.load_state_dict(bert.state_dict())
    x = torch.randint(10, (1, 8))
    y = x.clone()
    y[0, 6] = (x[0, 6] + 1) % 10                                             # change a later position
    with torch.no_grad():
        assert (gpt(x)[0][0, :6] - gpt(y)[0][0, :6]).abs().max() < 1e-6     # the GPT's earlier outputs ignore it
        assert (bert(x)[0][0, :6] - bert(y)[0][0, :6]).abs().max() > 1e-4   # the encoder's change


def test_encoder_equals_torch_encoder_stack():
    """One bidirectional block of MiniBERT is nn.TransformerEncoderLayer(norm_first=True) without a mask."""
    bert = _bert(1)
    block = bert.blocks[0]
    d, h = 32, 4
    ref = nn.TransformerEncoderLayer(d, h, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    a = block.attn
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.w_q.weight, a.w_k.weight, a.w_v.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.w_q.bias, a.w_k.bias, a.w_v.bias]))
        ref.self_attn.out_proj.load_state_dict(a.w_o.state_dict())
        ref.linear1.load_state_dict(block.ffn.w1.state_dict())
        ref.linear2.load_state_dict(block.ffn.w2.state_dict())
        ref.norm1.load_state_dict(block.ln1.state_dict())
        ref.norm2.load_state_dict(block.ln2.state_dict())
        x = torch.randn(2, 6, d)
        pad = torch.tensor([[1] * 6, [1] * 4 + [0] * 2]).bool()
        ours = block(x, causal=False, mask=pad[:, None, None, :])
        theirs = ref.eval()(x, src_key_padding_mask=~pad)
        assert (ours - theirs)[pad].abs().max() < 1e-5


def test_minibert_loss_only_on_chosen_positions_and_padding():
    bert = _bert()
    x = torch.randint(10, (2, 8))
    targets = torch.full_like(x, IGNORE)
    targets[0, 3] = x[0, 3]
    logits, loss = bert(x, targets)
    assert logits.shape == (2, 8, 11)
    want = nn.functional.cross_entropy(logits[0, 3][None], x[0, 3][None])
    assert abs(loss.item() - want.item()) < 1e-6
    # padding: extra padded positions, masked as keys, change nothing at the real ones
    padded = torch.cat([x, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    pad = torch.arange(12)[None] < 8
    with torch.no_grad():
        a = bert(x)[0]
        b = bert(padded, pad=pad.expand(2, 12))[0][:, :8]
    assert (a - b).abs().max() < 1e-5


def test_minibert_bad_input_and_no_generation():
    bert = _bert()
    with pytest.raises(ShapeError, match="block_size"):
        bert(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ShapeError, match="pad"):
        bert(torch.zeros(1, 5, dtype=torch.long), pad=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(NotImplementedError, match="fill_in"):
        bert.generate(torch.zeros(1, 2, dtype=torch.long), 3)


def test_fill_in_returns_top_k_without_the_mask():
    bert = _bert()
    ids = torch.randint(10, (8,))
    blanks = torch.zeros(8, dtype=torch.bool)
    blanks[[2, 5]] = True
    top, probs = fill_in(bert, ids, blanks, mask_id=10, k=3)
    assert top.shape == probs.shape == (2, 3)
    assert (top != 10).all()
    assert (probs[:, :-1] >= probs[:, 1:]).all()
    with pytest.raises(ShapeError):
        fill_in(bert, ids, blanks[:5], mask_id=10)
