"""course_utils.seq2seq: cross-attention and the decoder layer against PyTorch's modules, padding, the model."""

import pytest
import torch
import torch.nn as nn

from course_utils.errors import ShapeError
from course_utils.model import params_per_block
from course_utils.seq2seq import (
    IGNORE,
    CrossAttention,
    DecoderLayer,
    Seq2Seq,
    Seq2SeqConfig,
    TaskVocab,
    decoder_mask,
    decoder_only_batch,
    extra_params_per_decoder_layer,
    greedy_decoder_only,
    key_padding_mask,
    reversal_pairs,
    seq2seq_batch,
    to_torch_attention,
    to_torch_decoder_layer,
)


def _perturb(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


PAD = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 2 + [0] * 5]).bool()   # (3, 7)
MPAD = torch.tensor([[1] * 5, [1] * 4 + [0], [1] + [0] * 4]).bool()          # (3, 5)


@pytest.mark.parametrize("fast", [False, True])
def test_cross_attention_equals_torch_multihead(fast):
    torch.manual_seed(0)
    ca = CrossAttention(32, 4, fast=fast)
    _perturb(ca, 1)
    ref = to_torch_attention(ca)
    x, mem = torch.randn(3, 7, 32), torch.randn(3, 5, 32)
    assert (ca(x, mem) - ref(x, mem, mem)[0]).abs().max() < 1e-5
    assert (ca(x, mem, MPAD) - ref(x, mem, mem, key_padding_mask=~MPAD)[0]).abs().max() < 1e-5


def test_cross_attention_keeps_weights_of_shape_b_h_t_s():
    ca = CrossAttention(16, 2)
    ca.keep_weights = True
    ca(torch.randn(2, 4, 16), torch.randn(2, 6, 16), torch.tensor([[1] * 6, [1] * 3 + [0] * 3]).bool())
    w = ca.last_weights
    assert w.shape == (2, 2, 4, 6)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 4))
    assert (w[1, :, :, 3:] == 0).all()                       # padded keys get exactly zero weight


def test_cross_attention_bad_shapes():
    ca = CrossAttention(16, 2)
    with pytest.raises(ShapeError, match="memory"):
        ca(torch.randn(2, 4, 16), torch.randn(3, 6, 16))
    with pytest.raises(ShapeError, match="memory"):
        ca(torch.randn(2, 4, 16), torch.randn(2, 6, 8))
    with pytest.raises(ShapeError, match="x"):
        ca(torch.randn(4, 16), torch.randn(2, 6, 16))
    with pytest.raises(ShapeError, match="memory_pad"):
        ca(torch.randn(2, 4, 16), torch.randn(2, 6, 16), torch.ones(2, 5, dtype=torch.bool))


@pytest.mark.parametrize("fast", [False, True])
def test_decoder_layer_equals_torch_decoder_layer(fast):
    torch.manual_seed(1)
    layer = DecoderLayer(32, 4, fast=fast)
    _perturb(layer, 2)
    ref = to_torch_decoder_layer(layer)
    x, mem = torch.randn(3, 7, 32), torch.randn(3, 5, 32)
    causal_blocked = torch.ones(7, 7, dtype=torch.bool).triu(1)           # PyTorch: True = blocked
    with torch.no_grad():
        theirs = ref(x, mem, tgt_mask=causal_blocked, tgt_key_padding_mask=~PAD, memory_key_padding_mask=~MPAD)
        ours = layer(x, mem, pad=PAD, memory_pad=MPAD)
        assert (ours - theirs)[PAD].abs().max() < 1e-5
        assert (layer(x, mem) - ref(x, mem, tgt_mask=causal_blocked)).abs().max() < 1e-5


def test_extra_parameters_per_decoder_layer_match_torch():
    for d, h in [(32, 4), (64, 8), (48, 2)]:
        dec = nn.TransformerDecoderLayer(d, h, 4 * d, batch_first=True, norm_first=True)
        enc = nn.TransformerEncoderLayer(d, h, 4 * d, batch_first=True, norm_first=True)
        n = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
        assert n(dec) - n(enc) == extra_params_per_decoder_layer(d)
        assert n(DecoderLayer(d, h)) == params_per_block(d) + extra_params_per_decoder_layer(d) == n(dec)


def test_masks():
    pad = torch.tensor([[True, True, False]])
    assert key_padding_mask(pad).shape == (1, 1, 1, 3)
    m = decoder_mask(pad)[0, 0]
    assert m.tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    with pytest.raises(TypeError):
        key_padding_mask(torch.ones(2, 3))
    with pytest.raises(ShapeError):
        decoder_mask(torch.ones(3, dtype=torch.bool))


def _model(fast=True, seed=0):
    torch.manual_seed(seed)
    vocab = TaskVocab()
    model = Seq2Seq(Seq2SeqConfig(vocab_size=vocab.size, max_len=16, d_model=32, n_heads=4, n_enc=2, n_dec=2,
                                  fast=fast))
    _perturb(model, seed + 1)
    return vocab, model.eval()


@pytest.mark.parametrize("fast", [False, True])
def test_extra_padding_changes_nothing(fast):
    vocab, model = _model(fast)
    srcs = ["abc", "hello", "xy"]
    tgts = [s[::-1] for s in srcs]
    s1, t1, y1 = seq2seq_batch(srcs, tgts, vocab)
    s2, t2, y2 = seq2seq_batch(srcs, tgts, vocab, pad_to=12)
    with torch.no_grad():
        a, loss_a = model(s1, t1, y1)
        b, loss_b = model(s2, t2, y2)
    real = y1 != IGNORE
    assert (a[real] - b[:, :a.shape[1]][real]).abs().max() < 1e-5
    assert abs(loss_a.item() - loss_b.item()) < 1e-5
    # and each sequence alone (no padding at all) gives the same outputs as inside the padded batch
    for i, s in enumerate(srcs):
        si, ti, _ = seq2seq_batch([s], [tgts[i]], vocab)
        with torch.no_grad():
            alone = model(si, ti)[0][0]
        assert (alone - b[i, :len(tgts[i]) + 1]).abs().max() < 1e-5


def test_hand_built_and_fast_paths_agree():
    vocab, slow = _model(fast=False)
    _, fast = _model(fast=True)
    s, t, _ = seq2seq_batch(["abcd", "q"], ["dcba", "q"], vocab)
    with torch.no_grad():
        assert (slow(s, t)[0] - fast(s, t)[0]).abs().max() < 1e-5


def test_greedy_decoding_shapes_and_eos():
    vocab, model = _model()
    s, _, _ = seq2seq_batch(["abc", "hello"], ["cba", "olleh"], vocab)
    out = model.greedy(s, max_new=6)
    assert out.shape[0] == 2 and out.shape[1] <= 6
    for row in out.tolist():                                 # after an EOS only padding follows
        if vocab.eos in row:
            assert all(t == vocab.pad for t in row[row.index(vocab.eos) + 1:])


def test_model_bad_input():
    vocab, model = _model()
    with pytest.raises(ShapeError, match="max_len"):
        model(torch.ones(1, 20, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(TypeError):
        model(torch.ones(1, 3), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ShapeError, match="batch"):
        model(torch.ones(2, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))


def test_task_data():
    vocab = TaskVocab()
    g = torch.Generator().manual_seed(0)
    test = reversal_pairs(50, 3, 6, g)
    train = reversal_pairs(200, 3, 6, g, exclude=set(test))
    assert len(set(test)) == 50 and not set(test) & set(train)
    assert all(3 <= len(s) <= 6 for s in train)
    assert vocab.decode(vocab.encode("abc") + [vocab.eos, 5]) == "abc"
    with pytest.raises(ValueError, match="letters"):
        vocab.encode("aB")
    s, tin, tout = seq2seq_batch(["ab", "c"], ["ba", "c"], vocab)
    assert s.tolist() == [[4, 5], [6, 0]]
    assert tin.tolist() == [[1, 5, 4], [1, 6, 0]]
    assert tout.tolist() == [[5, 4, 2], [6, 2, IGNORE]]
    x, y = decoder_only_batch(["ab"], ["ba"], vocab)
    assert x.tolist() == [[4, 5, 3, 5, 4]]
    assert y.tolist() == [[IGNORE, IGNORE, 5, 4, 2]]


def test_greedy_decoder_only_reads_the_answer_after_the_separator():
    vocab = TaskVocab()

    class Reverser(nn.Module):        # a fake decoder-only model that writes the reversed prompt, then EOS
        def forward(self, x):
            B, T = x.shape
            logits = torch.zeros(B, T, vocab.size)
            for b in range(B):
                row = x[b].tolist()
                sep = row.index(vocab.sep)
                src, done = row[:sep], row[sep + 1:]
                nxt = src[::-1][len(done)] if len(done) < len(src) else vocab.eos
                logits[b, -1, nxt] = 1.0
            return logits, None

    assert greedy_decoder_only(Reverser(), ["abc", "hello", "xy"], vocab, 8) == ["cba", "olleh", "yx"]
