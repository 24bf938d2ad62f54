"""course_utils.quantize: symmetric int8 / group-wise int4 quantization, int4 packing, a quantized model."""

from __future__ import annotations

import pytest
import torch

from course_utils.errors import ShapeError
from course_utils.model import GPTConfig, MiniGPT
from course_utils.quantize import dequantize, pack_int4, quantize, quantize_model, unpack_int4


def test_int8_per_row_error_is_at_most_half_a_step():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    q, s = quantize(w, 8)
    assert q.dtype == torch.int8 and q.shape == (16, 64) and s.shape == (16, 1) and s.dtype == torch.float16
    assert q.abs().max() <= 127 and (q.abs().amax(1) == 127).all()   # each row's largest weight uses the full range
    err = (dequantize(q, s) - w).abs()
    assert (err <= s.float() / 2 + 1e-3 * s.float()).all()


def test_int4_groupwise_is_more_accurate_with_smaller_groups():
    w = torch.randn(8, 128, generator=torch.Generator().manual_seed(1))
    q, s = quantize(w, 4, group_size=32)
    assert s.shape == (8, 4) and q.abs().max() <= 7
    errs = [(dequantize(*quantize(w, 4, g)) - w).pow(2).mean() for g in (128, 32, 8)]
    assert errs[0] > errs[1] > errs[2]


def test_a_known_case_by_hand():
    w = torch.tensor([[0.5, -1.0, 0.25, 0.0]])
    q, s = quantize(w, 4)
    assert torch.equal(q, torch.tensor([[4, -7, 2, 0]], dtype=torch.int8))   # scale 1/7: 3.5 rounds to 4
    assert s.item() == pytest.approx(1 / 7, rel=1e-3)


def test_zero_rows_and_bad_input():
    q, s = quantize(torch.zeros(2, 4), 8)
    assert (q == 0).all() and (s == 1).all()
    with pytest.raises(ShapeError):
        quantize(torch.zeros(4), 8)
    with pytest.raises(ValueError, match="bits"):
        quantize(torch.zeros(2, 4), 3)
    with pytest.raises(ValueError, match="group_size"):
        quantize(torch.zeros(2, 6), 4, group_size=4)
    with pytest.raises(ShapeError):
        dequantize(torch.zeros(2, 6, dtype=torch.int8), torch.ones(3, 1))


def test_pack_unpack_int4_roundtrip():
    q = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)
    p = pack_int4(q)
    assert p.dtype == torch.uint8 and p.shape == (3, 16)
    assert torch.equal(unpack_int4(p), q)
    with pytest.raises(ValueError):
        pack_int4(torch.zeros(3, dtype=torch.int8))
    with pytest.raises(ValueError, match="-8, 7"):
        pack_int4(torch.full((2,), 9, dtype=torch.int8))
    with pytest.raises(ValueError):
        unpack_int4(q)


def test_quantize_model_bytes_and_outputs():
    model = MiniGPT(GPTConfig(vocab_size=40, block_size=16, d_model=32, n_layers=2, n_heads=4)).eval()
    n2d = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    rows = sum(p.shape[0] for p in model.parameters() if p.dim() == 2)
    n1d = sum(p.numel() for p in model.parameters() if p.dim() < 2)
    m8, b8 = quantize_model(model, 8)
    assert b8 == n2d + 2 * rows + 4 * n1d
    m4, b4 = quantize_model(model, 4, group_size=16)
    assert b4 == n2d // 2 + 2 * (n2d // 16) + 4 * n1d
    x = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        ref, q8, q4 = model(x)[0], m8(x)[0], m4(x)[0]
    assert 0 < (q8 - ref).abs().max() < (q4 - ref).abs().max()
    assert not torch.equal(m8.tok_emb.weight, model.tok_emb.weight)   # a copy; the original is untouched
    assert m8.tok_emb.weight.data_ptr() != model.tok_emb.weight.data_ptr()
