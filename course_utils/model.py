"""The transformer block and the mini-GPT, built from the course's own pieces (notebooks 03-08).

    x = x + MultiHeadAttention(LayerNorm(x))      (causal)
    x = x + FeedForward(LayerNorm(x))             FFN(x) = GELU(x W1 + b1) W2 + b2, width 4 d

MiniGPT: token embedding + position embedding -> N blocks -> final LayerNorm -> logits = h E^T (the output
layer is tied to the token embedding E).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import modern
from .attention import MultiHeadAttention
from .errors import ShapeError, check_shape


class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dim (biased variance, as nn.LayerNorm)."""

    def __init__(self, d: int, eps: float = 1e-5, fast: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))   # gamma
        self.bias = nn.Parameter(torch.zeros(d))    # beta
        self.eps = eps
        self.fast = fast   # same function through PyTorch's fused kernel (faster training on a CPU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.weight.shape[0]:
            raise ShapeError(f"LayerNorm expects (..., {self.weight.shape[0]}), got {tuple(x.shape)}")
        if self.fast:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class FeedForward(nn.Module):
    """FFN(x) = GELU(x W1 + b1) W2 + b2 applied at every position; hidden width ``mult * d`` (4 d by default)."""

    def __init__(self, d: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d, mult * d)
        self.w2 = nn.Linear(mult * d, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.gelu(self.w1(x))))


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(ln1(x)), then x + ffn(ln2(x)). (B, T, d) -> (B, T, d).

    ``residual=False`` and ``norm=False`` exist for notebook 07's experiments on deep stacks.
    """

    def __init__(self, d: int, n_heads: int, dropout: float = 0.0, fast: bool = False,
                 residual: bool = True, norm: bool = True):
        super().__init__()
        self.ln1 = LayerNorm(d, fast=fast) if norm else nn.Identity()
        self.attn = MultiHeadAttention(d, n_heads, dropout=dropout, fast=fast)
        self.ln2 = LayerNorm(d, fast=fast) if norm else nn.Identity()
        self.ffn = FeedForward(d, dropout=dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.residual = residual

    def forward(self, x: torch.Tensor, causal: bool = True, mask: torch.Tensor | None = None,
                cache: dict | None = None) -> torch.Tensor:
        a = self.resid_dropout(self.attn(self.ln1(x), mask=mask, causal=causal, cache=cache))
        x = x + a if self.residual else a
        f = self.ffn(self.ln2(x))
        return x + f if self.residual else f


class PostNormBlock(nn.Module):
    """The post-norm block of the 2017 transformer: h = LN1(x + attn(x)), then LN2(h + ffn(h)). (B, T, d) -> (B, T, d).

    For notebook 07's comparison with the pre-norm :class:`Block` (same parameters, same count); not used by MiniGPT.
    """

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.attn, self.ln1 = MultiHeadAttention(d, n_heads), LayerNorm(d)
        self.ffn, self.ln2 = FeedForward(d), LayerNorm(d)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        h = self.ln1(x + self.attn(x, causal=causal))
        return self.ln2(h + self.ffn(h))


def params_per_block(d: int, mult: int = 4) -> int:
    """Exact parameter count of one :class:`Block` of width d (with biases and LayerNorms).

    attention: 4 d^2 weights + 4 d biases; feed-forward: 2 mult d^2 weights + (mult + 1) d biases;
    two LayerNorms: 4 d. With mult = 4: 12 d^2 + 13 d, so about 12 d^2 once d is large.
    """
    return 4 * d * d + 4 * d + 2 * mult * d * d + (mult + 1) * d + 4 * d


def gpt_param_count(vocab_size: int, block_size: int, d_model: int, n_layers: int) -> int:
    """Exact parameter count of a :class:`MiniGPT` (the output layer is tied, so E counts once)."""
    return vocab_size * d_model + block_size * d_model + n_layers * params_per_block(d_model) + 2 * d_model


@dataclass
class GPTConfig:
    """Sizes of a MiniGPT. Parameters ~ 12 n_layers d_model^2 + (vocab_size + block_size) d_model."""

    vocab_size: int
    block_size: int = 128
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    dropout: float = 0.0
    fast: bool = True   # fused attention and LayerNorm kernels for speed (the same function as the hand-built path)
    # Today's options (notebook 15, course_utils.modern); the defaults give the GPT-2-style model of notebook 08.
    pos: str = "learned"             # "rope": rotary embeddings on queries and keys, no position table
    norm: str = "layernorm"          # "rmsnorm"
    mlp: str = "gelu"                # "swiglu" (hidden 8d/3, same parameters) or "relu2"
    qk_norm: bool = False            # normalise each head's queries and keys
    tied: bool = True                # False: an output layer of its own
    zero_init: bool = False          # output projections start at zero
    n_kv_heads: int | None = None    # grouped-query attention: key/value heads (None = n_heads)
    bias: bool = True                # biases in the linear layers

    def __post_init__(self):
        from .modern import check_config
        check_config(self)


class MiniGPT(nn.Module):
    """A small GPT. forward(idx: (B, T) token ids, targets: (B, T) or None) -> (logits (B, T, V), loss or None)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)   # E: (V, d)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model) if c.pos == "learned" else None  # P: (block_size, d)
        self.drop = nn.Dropout(c.dropout)
        if modern.is_modern(c):                  # notebook 15's options
            self.blocks = nn.ModuleList(modern.ModernBlock(c) for _ in range(c.n_layers))
            self.ln_f = modern.make_norm(c)
        else:
            self.blocks = nn.ModuleList(Block(c.d_model, c.n_heads, c.dropout, c.fast) for _ in range(c.n_layers))
            self.ln_f = LayerNorm(c.d_model, fast=c.fast)
        self.lm_head = None if c.tied else nn.Linear(c.d_model, c.vocab_size, bias=False)   # W_out: (V, d)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():   # scale the projections that write into the residual stream
            if name.endswith(("attn.w_o.weight", "ffn.w2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))
            if c.zero_init and name.endswith(("attn.w_o.weight", "ffn.w2.weight", "lm_head.weight")):
                nn.init.zeros_(p)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: list[dict] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (B, T) token ids. cache: one dict per block (see MultiHeadAttention) for generation."""
        check_shape(idx, ("B", "T"), "idx (batch, time) of token ids")
        if idx.dtype not in (torch.long, torch.int32, torch.int64):
            raise TypeError(f"idx should hold integer token ids, got dtype {idx.dtype}")
        B, T = idx.shape
        past = cache[0]["k"].shape[2] if cache and "k" in cache[0] else 0
        if past + T > self.config.block_size:
            raise ShapeError(f"the model sees at most block_size={self.config.block_size} tokens; got "
                             f"{past + T} (crop the context to its last {self.config.block_size} tokens)")
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"cache needs one dict per block ({len(self.blocks)}), got {len(cache)}")
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.tok_emb(idx)
        x = self.drop(x + self.pos_emb(pos) if self.pos_emb is not None else x)   # (B, T, d)
        for i, block in enumerate(self.blocks):
            x = block(x, causal=True, cache=None if cache is None else cache[i])
        x = self.ln_f(x)
        logits = x @ self.tok_emb.weight.T if self.lm_head is None else self.lm_head(x)   # (B, T, V)
        loss = None
        if targets is not None:
            check_shape(targets, (B, T), "targets")
            loss = F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to idx (B, T) -> (B, T + max_new_tokens), recomputing the
        whole (cropped) context at each step. ``course_utils.generation`` has greedy, top-p and a KV cache."""
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (use greedy decoding for temperature 0)")
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size:]
            logits, _ = self(context)
            logits = logits[:, -1, :].float() / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1, None]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        self.train(was_training)
        return idx

    def config_dict(self) -> dict:
        return asdict(self.config)
