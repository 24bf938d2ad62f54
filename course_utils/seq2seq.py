"""The encoder-decoder family: cross-attention, the decoder layer and a small seq2seq model (notebook 13).

    memory = Encoder(src)                                  bidirectional blocks over the source  (B, S, d)
    x = x + SelfAttention(LN1(x))                          causal, over the target so far        (B, T, d)
    x = x + CrossAttention(LN2(x), memory)                 queries from x, keys and values from memory
    x = x + FFN(LN3(x))

Cross-attention is the course's :class:`~course_utils.attention.MultiHeadAttention` with the queries taken from
one sequence and the keys and values from another; it adds 4 d^2 + 4 d parameters (and the third LayerNorm
2 d) to each decoder layer. Padding: every mask here is boolean with True = "may attend" (the course's
convention; PyTorch's ``key_padding_mask`` uses the opposite), and ``pad`` masks are (B, length) with True at
real tokens.

The task the course trains on is generated here: reverse a string of letters (``reversal_pairs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention, attention, causal_mask
from .errors import ShapeError, check_shape
from .model import Block, FeedForward, LayerNorm

IGNORE = -100


def key_padding_mask(pad: torch.Tensor) -> torch.Tensor:
    """(B, S) bool, True at real tokens -> (B, 1, 1, S): broadcasts over heads and queries (True = may attend)."""
    check_shape(pad, ("B", "S"), "pad (batch, length), True at real tokens")
    if pad.dtype != torch.bool:
        raise TypeError("pad should be a boolean tensor, True at real tokens and False at padding")
    return pad[:, None, None, :]


class CrossAttention(MultiHeadAttention):
    """Multi-head attention whose queries come from ``x`` and whose keys and values come from ``memory``.

    forward(x: (B, T, d), memory: (B, S, d), memory_pad: (B, S) bool or None) -> (B, T, d).
    Same parameters as :class:`MultiHeadAttention` (w_q, w_k, w_v, w_o); with ``keep_weights=True`` the
    weights (B, h, T, S) are kept in ``last_weights``.
    """

    def forward(self, x: torch.Tensor, memory: torch.Tensor,  # type: ignore[override]
                memory_pad: torch.Tensor | None = None) -> torch.Tensor:
        check_shape(x, ("B", "T", self.d_model), "x (batch, target time, d_model)")
        check_shape(memory, (x.shape[0], "S", self.d_model), "memory (batch, source time, d_model)")
        q = self.split_heads(self.w_q(x))                               # (B, h, T, d_head)
        k, v = self.split_heads(self.w_k(memory)), self.split_heads(self.w_v(memory))   # (B, h, S, d_head)
        mask = None
        if memory_pad is not None:
            check_shape(memory_pad, (x.shape[0], memory.shape[1]), "memory_pad (batch, source time)")
            mask = key_padding_mask(memory_pad)
        if self.fast and not self.keep_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out, weights = attention(q, k, v, mask)
            if self.keep_weights:
                self.last_weights = weights.detach()
        return self.w_o(self.merge_heads(out))


def decoder_mask(pad: torch.Tensor) -> torch.Tensor:
    """The decoder's self-attention mask: causal AND key padding. pad (B, T) -> (B, 1, T, T), True = may attend."""
    check_shape(pad, ("B", "T"), "pad (batch, time), True at real tokens")
    return causal_mask(pad.shape[1], pad.device)[None, None] & key_padding_mask(pad)


class DecoderLayer(nn.Module):
    """A pre-norm decoder layer: causal self-attention, cross-attention to the encoder's output, feed-forward.

    forward(x: (B, T, d), memory: (B, S, d), pad: (B, T) or None, memory_pad: (B, S) or None) -> (B, T, d).
    The same function as ``nn.TransformerDecoderLayer(d, h, 4 d, dropout=0, activation="gelu", batch_first=True,
    norm_first=True)`` (see :func:`to_torch_decoder_layer`).
    """

    def __init__(self, d: int, n_heads: int, fast: bool = False):
        super().__init__()
        self.ln1 = LayerNorm(d, fast=fast)
        self.self_attn = MultiHeadAttention(d, n_heads, fast=fast)
        self.ln2 = LayerNorm(d, fast=fast)
        self.cross_attn = CrossAttention(d, n_heads, fast=fast)
        self.ln3 = LayerNorm(d, fast=fast)
        self.ffn = FeedForward(d)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pad: torch.Tensor | None = None,
                memory_pad: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if pad is None else decoder_mask(pad)
        x = x + self.self_attn(self.ln1(x), mask=mask, causal=mask is None)
        x = x + self.cross_attn(self.ln2(x), memory, memory_pad)
        return x + self.ffn(self.ln3(x))


def extra_params_per_decoder_layer(d: int) -> int:
    """What a decoder layer has beyond an encoder block of width d: cross-attention 4 d^2 + 4 d, a LayerNorm 2 d."""
    return 4 * d * d + 4 * d + 2 * d


def _copy_attention(ref: nn.MultiheadAttention, mine: MultiHeadAttention) -> None:
    ref.in_proj_weight.copy_(torch.cat([mine.w_q.weight, mine.w_k.weight, mine.w_v.weight]))
    ref.in_proj_bias.copy_(torch.cat([mine.w_q.bias, mine.w_k.bias, mine.w_v.bias]))
    ref.out_proj.weight.copy_(mine.w_o.weight)
    ref.out_proj.bias.copy_(mine.w_o.bias)


@torch.no_grad()
def to_torch_attention(mine: MultiHeadAttention) -> nn.MultiheadAttention:
    """A ``nn.MultiheadAttention(batch_first=True)`` holding a copy of the course module's weights."""
    ref = nn.MultiheadAttention(mine.d_model, mine.n_heads, dropout=0.0, batch_first=True)
    _copy_attention(ref, mine)
    return ref.eval()


@torch.no_grad()
def to_torch_decoder_layer(layer: DecoderLayer) -> nn.TransformerDecoderLayer:
    """PyTorch's ``nn.TransformerDecoderLayer`` (pre-norm, GELU, no dropout) with a copy of ``layer``'s weights."""
    d, h = layer.self_attn.d_model, layer.self_attn.n_heads
    ref = nn.TransformerDecoderLayer(d, h, dim_feedforward=layer.ffn.w1.out_features, dropout=0.0,
                                     activation="gelu", batch_first=True, norm_first=True)
    _copy_attention(ref.self_attn, layer.self_attn)
    _copy_attention(ref.multihead_attn, layer.cross_attn)
    ref.linear1.load_state_dict(layer.ffn.w1.state_dict())
    ref.linear2.load_state_dict(layer.ffn.w2.state_dict())
    for theirs, ours in ((ref.norm1, layer.ln1), (ref.norm2, layer.ln2), (ref.norm3, layer.ln3)):
        theirs.weight.copy_(ours.weight)
        theirs.bias.copy_(ours.bias)
    return ref.eval()


# ---- the model -----------------------------------------------------------------------------------------------

@dataclass
class Seq2SeqConfig:
    """Sizes of a :class:`Seq2Seq`. Ids 0, 1, 2 are PAD, BOS and EOS (see :class:`TaskVocab`)."""

    vocab_size: int
    max_len: int = 32          # longest source and longest target (BOS/EOS included)
    d_model: int = 64
    n_heads: int = 4
    n_enc: int = 2
    n_dec: int = 2
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    fast: bool = True          # fused kernels (the same function as the hand-built path)


class Seq2Seq(nn.Module):
    """An encoder-decoder transformer. One token embedding E (shared by source, target and output: logits = h E^T),
    a learned position embedding for each side, ``n_enc`` encoder blocks (:class:`~course_utils.model.Block`,
    not causal) and ``n_dec`` :class:`DecoderLayer` s.

    forward(src: (B, S), tgt_in: (B, T), targets: (B, T) or None) -> (logits (B, T, V), loss or None).
    Padding (``pad_id``) is found from the ids and masked out of every attention as a key.
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_src = nn.Embedding(c.max_len, c.d_model)
        self.pos_tgt = nn.Embedding(c.max_len, c.d_model)
        self.encoder = nn.ModuleList(Block(c.d_model, c.n_heads, fast=c.fast) for _ in range(c.n_enc))
        self.ln_enc = LayerNorm(c.d_model, fast=c.fast)
        self.decoder = nn.ModuleList(DecoderLayer(c.d_model, c.n_heads, fast=c.fast) for _ in range(c.n_dec))
        self.ln_dec = LayerNorm(c.d_model, fast=c.fast)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        for name, p in self.named_parameters():   # scale the projections that write into the residual stream
            if name.endswith(("w_o.weight", "ffn.w2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * (c.n_enc + c.n_dec)))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check(self, ids: torch.Tensor, name: str) -> None:
        check_shape(ids, ("B", "T"), f"{name} (batch, time) of token ids")
        if ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise TypeError(f"{name} should hold integer token ids, got dtype {ids.dtype}")
        if ids.shape[1] > self.config.max_len:
            raise ShapeError(f"{name} has {ids.shape[1]} positions; the model takes at most max_len="
                             f"{self.config.max_len}")

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) -> (memory (B, S, d), src_pad (B, S) True at real tokens)."""
        self._check(src, "src")
        pad = src != self.config.pad_id
        x = self.tok_emb(src) + self.pos_src(torch.arange(src.shape[1], device=src.device))
        for block in self.encoder:
            x = block(x, causal=False, mask=key_padding_mask(pad))
        return self.ln_enc(x), pad

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        """tgt_in (B, T) (starting with BOS), memory (B, S, d) -> logits (B, T, V)."""
        self._check(tgt_in, "tgt_in")
        pad = tgt_in != self.config.pad_id
        x = self.tok_emb(tgt_in) + self.pos_tgt(torch.arange(tgt_in.shape[1], device=tgt_in.device))
        for layer in self.decoder:
            x = layer(x, memory, pad=pad, memory_pad=src_pad)
        return self.ln_dec(x) @ self.tok_emb.weight.T

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if src.dim() == 2 and tgt_in.dim() == 2 and src.shape[0] != tgt_in.shape[0]:
            raise ShapeError(f"src and tgt_in need the same batch size, got {tuple(src.shape)} and "
                             f"{tuple(tgt_in.shape)}")
        memory, src_pad = self.encode(src)
        logits = self.decode(tgt_in, memory, src_pad)
        loss = None
        if targets is not None:
            check_shape(targets, tuple(tgt_in.shape), "targets")
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE)
        return logits, loss

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_new: int | None = None) -> torch.Tensor:
        """Greedy decoding: src (B, S) -> (B, n) generated ids (BOS dropped), each row ending with EOS and then PAD
        (or cut at ``max_new`` tokens). The whole target so far is recomputed at each step (no cache)."""
        c = self.config
        max_new = c.max_len - 1 if max_new is None else max_new
        was_training = self.training
        self.eval()
        memory, src_pad = self.encode(src)
        out = torch.full((src.shape[0], 1), c.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_new):
            nxt = self.decode(out, memory, src_pad)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, c.pad_id), nxt)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == c.eos_id
            if done.all():
                break
        self.train(was_training)
        return out[:, 1:]


# ---- the task: reverse a string ------------------------------------------------------------------------------

class TaskVocab:
    """PAD=0, BOS=1, EOS=2, SEP=3 (for a decoder-only model), then the letters a..z."""

    specials = ["<pad>", "<bos>", "<eos>", "="]

    def __init__(self, letters: str = "abcdefghijklmnopqrstuvwxyz"):
        self.itos = self.specials + list(letters)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad, self.bos, self.eos, self.sep = 0, 1, 2, 3

    @property
    def size(self) -> int:
        return len(self.itos)

    def encode(self, s: str) -> list[int]:
        bad = [ch for ch in s if ch not in self.stoi or self.stoi[ch] < len(self.specials)]
        if bad:
            raise ValueError(f"character {bad[0]!r} is not one of the task's letters")
        return [self.stoi[ch] for ch in s]

    def decode(self, ids) -> str:
        """Letters up to the first EOS; special symbols are dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i >= len(self.specials):
                out.append(self.itos[i])
        return "".join(out)


def reversal_pairs(n: int, min_len: int, max_len: int, generator: torch.Generator,
                   exclude: set[str] | None = None, letters: str = "abcdefghijklmnopqrstuvwxyz") -> list[str]:
    """``n`` distinct random strings of length min_len..max_len (uniform), none of them in ``exclude``."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    exclude = exclude or set()
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        L = int(torch.randint(min_len, max_len + 1, (1,), generator=generator))
        s = "".join(letters[int(i)] for i in torch.randint(len(letters), (L,), generator=generator))
        if s not in exclude and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _pad(rows: list[list[int]], value: int, length: int | None = None) -> torch.Tensor:
    length = max(len(r) for r in rows) if length is None else length
    return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.long)


def seq2seq_batch(sources: list[str], targets: list[str], vocab: TaskVocab,
                  pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded tensors for the encoder-decoder: src (B, S), tgt_in = BOS + target (B, T), tgt_out = target + EOS
    (B, T) with ``IGNORE`` at padding. ``pad_to`` pads every tensor to that length (default: the longest)."""
    src = _pad([vocab.encode(s) for s in sources], vocab.pad, pad_to)
    tin = _pad([[vocab.bos] + vocab.encode(t) for t in targets], vocab.pad, pad_to)
    tout = _pad([vocab.encode(t) + [vocab.eos] for t in targets], IGNORE, pad_to)
    return src, tin, tout


def decoder_only_batch(sources: list[str], targets: list[str],
                       vocab: TaskVocab) -> tuple[torch.Tensor, torch.Tensor]:
    """The same task for a decoder-only model: x = source '=' target, y = x shifted by one, scored only on the
    target and EOS (``IGNORE`` on the source, the '=' and padding). Both (B, T)."""
    xs, ys = [], []
    for s, t in zip(sources, targets, strict=True):
        seq = vocab.encode(s) + [vocab.sep] + vocab.encode(t) + [vocab.eos]
        xs.append(seq[:-1])
        ys.append([IGNORE] * len(s) + seq[len(s) + 1:])
    return _pad(xs, vocab.pad), _pad(ys, IGNORE)


@torch.no_grad()
def greedy_decoder_only(model: nn.Module, sources: list[str], vocab: TaskVocab, max_new: int) -> list[str]:
    """Greedy answers of a decoder-only model (a MiniGPT) prompted with 'source='. Sources of the same length are
    decoded together, so no prompt needs padding."""
    was_training = model.training
    model.eval()
    answers: dict[int, str] = {}
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(sources):
        by_len.setdefault(len(s), []).append(i)
    for _, idx in sorted(by_len.items()):
        x = torch.tensor([vocab.encode(sources[i]) + [vocab.sep] for i in idx], dtype=torch.long)
        for _ in range(max_new):
            nxt = model(x)[0][:, -1].argmax(-1)
            x = torch.cat([x, nxt[:, None]], dim=1)
            if (x == vocab.eos).any(dim=1).all():
                break
        for row, i in zip(x.tolist(), idx, strict=True):
            answers[i] = vocab.decode(row[len(sources[i]) + 1:])
    model.train(was_training)
    return [answers[i] for i in range(len(sources))]
