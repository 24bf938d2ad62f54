"""The mini-GPT, assembled from the course's own pieces (notebooks 03-08), and its config.

    x = x + MultiHeadAttention(LayerNorm(x))      (causal)
    x = x + FeedForward(LayerNorm(x))             FFN(x) = GELU(x W1 + b1) W2 + b2, width 4 d

MiniGPT: token embedding + position embedding -> N blocks -> final LayerNorm -> logits = h E^T (the output
layer is tied to the token embedding E). With notebook 15's options on (:func:`is_modern`) the blocks are
``ModernBlock`` s, which also cover a Llama-architecture model (RoPE with its base, RMSNorm with its eps, SwiGLU
with an explicit width, grouped-query attention, no biases).

The blocks and their pieces (LayerNorm, FeedForward, Block, PostNormBlock, ...) live in ``course_utils.layers``
and are importable from here as before. This module imports layers (never modern): ``GPTConfig`` and its checks
are here, the training-side options (Muon, the WSD schedule) in ``course_utils.modern``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ShapeError, check_shape
from .layers import Block, FeedForward, LayerNorm, ModernBlock, PostNormBlock, make_norm
from .positional import DEFAULT_BASE

__all__ = ["GPTConfig", "MiniGPT", "check_config", "is_modern", "filled_config", "params_per_block", "gpt_param_count",
           "Block", "PostNormBlock", "LayerNorm", "FeedForward", "POS", "NORMS", "MLPS"]

POS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "relu2")


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
    # What a Llama-architecture model also needs (the defaults change nothing):
    rope_base: float = DEFAULT_BASE  # RoPE's base b: theta_i = b^(-2i/d_head)
    norm_eps: float | None = None    # eps of every norm (None = LayerNorm 1e-5, RMSNorm 1e-6)
    ffn_hidden: int | None = None    # feed-forward hidden width (None = 4d for gelu/relu2, round(8d/3) for swiglu)

    def __post_init__(self):
        check_config(self)

    def __repr__(self) -> str:
        """Every field, except the Llama options while they hold their defaults (so the configs of notebooks
        08-15 print as they always have)."""
        shown = [f.name for f in fields(self) if f.name not in LLAMA_FIELDS or getattr(self, f.name) != f.default]
        return f"GPTConfig({', '.join(f'{name}={getattr(self, name)!r}' for name in shown)})"


LLAMA_FIELDS = ("rope_base", "norm_eps", "ffn_hidden")   # the fields added for Llama-architecture models


def filled_config(saved: dict) -> dict:
    """A config dict as stored in a checkpoint, with the fields it lacks (added since it was written) at their
    defaults, so that it compares equal to ``asdict`` of the same GPTConfig today."""
    defaults = {f.name: f.default for f in fields(GPTConfig) if f.default is not MISSING}
    return {**defaults, **saved}


def is_modern(config) -> bool:
    """True when any option of notebook 15 (or a Llama model's) is on: the model then uses ``ModernBlock``."""
    return (config.pos != "learned" or config.norm != "layernorm" or config.mlp != "gelu" or config.qk_norm
            or not config.tied or config.zero_init or config.n_kv_heads not in (None, config.n_heads)
            or not config.bias or getattr(config, "norm_eps", None) is not None
            or getattr(config, "ffn_hidden", None) is not None
            or getattr(config, "rope_base", DEFAULT_BASE) != DEFAULT_BASE)


def check_config(c) -> None:
    """Clear errors for GPTConfig values and combinations that do not make sense."""
    for name, value, allowed in (("pos", c.pos, POS), ("norm", c.norm, NORMS), ("mlp", c.mlp, MLPS)):
        if value not in allowed:
            raise ValueError(f"GPTConfig.{name} should be one of {', '.join(map(repr, allowed))}, got {value!r}")
    for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_layers"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"GPTConfig.{name} should be a positive int, got {v!r}")
    if c.d_model % c.n_heads:
        raise ValueError(f"d_model={c.d_model} must be divisible by n_heads={c.n_heads}")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"dropout should be in [0, 1), got {c.dropout}")
    if c.n_kv_heads is not None:
        if isinstance(c.n_kv_heads, bool) or not isinstance(c.n_kv_heads, int) or c.n_kv_heads < 1:
            raise ValueError(f"n_kv_heads should be a positive int (or None = n_heads), got {c.n_kv_heads!r}")
        if c.n_heads % c.n_kv_heads:
            raise ValueError(f"grouped-query attention shares each key/value head among n_heads / n_kv_heads query "
                             f"heads, so n_kv_heads={c.n_kv_heads} must divide n_heads={c.n_heads}")
    if c.pos == "rope" and (c.d_model // c.n_heads) % 2:
        raise ValueError(f"rotary embeddings rotate pairs of coordinates, so the head size d_model / n_heads = "
                         f"{c.d_model // c.n_heads} must be even")
    rb = c.rope_base
    if isinstance(rb, bool) or not isinstance(rb, numbers.Real) or not math.isfinite(rb) or rb <= 1:
        raise ValueError(f"GPTConfig.rope_base is RoPE's base (theta_i = base^(-2i/d_head)): a finite number "
                         f"> 1, such as 10000.0 or 100000.0; got {rb!r}")
    eps = c.norm_eps
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps)
                            or not 0 < eps < 1):
        raise ValueError(f"GPTConfig.norm_eps is the eps of every norm: a small number > 0 such as 1e-5 "
                         f"(or None for each norm's default); got {eps!r}")
    h = c.ffn_hidden
    if h is not None and (isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1):
        raise ValueError(f"GPTConfig.ffn_hidden is the feed-forward hidden width: a positive int (or None for "
                         f"the default of mlp={c.mlp!r}); got {h!r}")
    if is_modern(c) and not c.fast:
        raise ValueError("the modern options run through PyTorch's fused attention only; keep fast=True "
                         "(fast=False is the hand-built path of notebooks 03-08 for the GPT-2-style model)")


class MiniGPT(nn.Module):
    """A small GPT. forward(idx: (B, T) token ids, targets: (B, T) or None) -> (logits (B, T, V), loss or None)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)   # E: (V, d)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model) if c.pos == "learned" else None  # P: (block_size, d)
        self.drop = nn.Dropout(c.dropout)
        if is_modern(c):                         # notebook 15's options
            self.blocks = nn.ModuleList(ModernBlock(c) for _ in range(c.n_layers))
            self.ln_f = make_norm(c)
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
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            bad = idx[(idx < 0) | (idx >= self.config.vocab_size)].unique()[:5].tolist()
            raise ValueError(f"unknown token id(s) {bad}: this model's ids are 0..{self.config.vocab_size - 1}")
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
