"""The big numbers of a transformer, from its config (notebook 11): parameters, memory, FLOPs, KV cache.

Everything here is arithmetic on a :class:`ModelConfig`; nothing is measured. Notebook 11 checks each formula
against real tensors (``MiniGPT.num_params()``, ``numel() * element_size()``, ``FlopCounterMode``, the key-value
cache of ``course_utils.generation``) and against published totals.

    param_count(cfg)                       -> exact number of parameters
    param_breakdown(cfg)                   -> the same, split into embedding / attention / feed-forward / ...
    weight_bytes(n, "bf16")                -> bytes of the weights alone
    training_bytes(n, ...)                 -> weights + gradients + AdamW moments (+ fp32 master weights)
    forward_flops_per_token(cfg, T)        -> 2 * (matmul weights) + 4 * layers * T * d_attn
    training_flops_per_token(cfg, T)       -> 3 x the forward: 6 * (matmul weights) + 12 * layers * T * d_attn
    training_flops(n, tokens)              -> 6 N D
    kv_cache_bytes(cfg, T)                 -> 2 * layers * kv_heads * head_dim * T * batch * bytes
    attention_scores_bytes(T)              -> T * T * bytes for one head of one layer

Conventions: 1 GB = 10**9 bytes, 1 GiB = 2**30 bytes; a FLOP is one multiply or one add, so a multiply-add
counts 2 (the convention of Kaplan et al. 2020 and of ``torch.utils.flop_counter``). Attention is counted on the
full T x T score matrix, as the course's attention computes it and ``FlopCounterMode`` counts it; ``causal=True``
counts only the unmasked half (Kaplan's 6N + 6LTd for training), the work of a kernel that skips masked blocks.
The course uses the full count everywhere (notebooks 11, 12, 15 and the benchmarks) unless a cell says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["ConfigError", "ModelConfig", "PUBLISHED", "BYTES_PER_PARAM", "GPU_MEMORY_GIB", "param_breakdown",
           "param_count", "non_embedding_params", "matmul_params", "weight_bytes", "training_bytes",
           "forward_flops_per_token", "training_flops_per_token", "training_flops", "gpu_days", "kv_cache_bytes",
           "attention_scores_bytes",
           "fitting_gpus", "from_gpt_config", "summary", "GB", "GiB"]

GB = 10**9
GiB = 2**30

#: Bytes that one number takes in each precision (int4 packs two numbers per byte).
BYTES_PER_PARAM: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1, "int4": 0.5}

#: Memory of some common GPUs, nominal sizes in GiB (the driver keeps a little of it for itself).
GPU_MEMORY_GIB: dict[str, int] = {"8 GiB (laptop GPU)": 8, "16 GiB (T4, V100-16)": 16, "24 GiB (RTX 4090)": 24,
                                  "40 GiB (A100-40)": 40, "48 GiB (L40S, A6000)": 48, "80 GiB (A100-80, H100)": 80}


class ConfigError(ValueError):
    """A model config that cannot describe a transformer (e.g. heads that do not divide d_model)."""


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} should be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class ModelConfig:
    """The sizes of a decoder-only transformer.

    vocab_size, n_ctx (context length), d_model, n_layers, n_heads: as usual; head_dim = d_model / n_heads.
    n_kv_heads: key/value heads (grouped-query attention); None = n_heads (plain multi-head attention).
    ffn: "gelu" (two matrices d x d_ff and d_ff x d) or "swiglu" (three: gate, up, down).
    d_ff: the feed-forward width; None = 4 d_model for "gelu" (SwiGLU models publish theirs: give it).
    bias: biases in every linear layer and in the LayerNorms (GPT-2, GPT-3); False as in Llama or nanoGPT's
        bias=False. tied: the output layer reuses the token embedding (GPT-2, the course's MiniGPT).
    pos: "learned" (a position embedding of n_ctx x d_model) or "rope" (rotary: no parameters).
    norm: "layernorm" (gain, plus a bias if ``bias``) or "rmsnorm" (gain only); two per block and one final.
    """

    vocab_size: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    d_ff: int | None = None
    ffn: str = "gelu"
    bias: bool = True
    tied: bool = True
    pos: str = "learned"
    norm: str = "layernorm"
    name: str = "custom"

    def __post_init__(self):
        for field in ("vocab_size", "n_ctx", "d_model", "n_layers", "n_heads"):
            _positive_int(field, getattr(self, field))
        if self.d_model % self.n_heads:
            raise ConfigError(f"n_heads={self.n_heads} does not divide d_model={self.d_model}: every head needs "
                              f"the same size d_model / n_heads (try n_heads in "
                              f"{[h for h in range(1, min(self.d_model, 128) + 1) if self.d_model % h == 0][-6:]})")
        if self.n_kv_heads is not None:
            _positive_int("n_kv_heads", self.n_kv_heads)
            if self.n_heads % self.n_kv_heads:
                raise ConfigError(f"n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}: in "
                                  "grouped-query attention each key/value head serves the same number of query "
                                  "heads (n_heads / n_kv_heads)")
        if self.ffn not in ("gelu", "swiglu"):
            raise ConfigError(f"ffn should be 'gelu' or 'swiglu', got {self.ffn!r}")
        if self.d_ff is not None:
            _positive_int("d_ff", self.d_ff)
        if self.pos not in ("learned", "rope"):
            raise ConfigError(f"pos should be 'learned' or 'rope', got {self.pos!r}")
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ConfigError(f"norm should be 'layernorm' or 'rmsnorm', got {self.norm!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def ffn_width(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    def with_(self, **changes) -> ModelConfig:
        """A copy with some fields changed (checked again), e.g. ``cfg.with_(n_ctx=8192)``."""
        return replace(self, **changes)


#: Published configs (layers, d_model, heads, kv heads, FFN width, vocabulary, context) as the papers and the
#: released model files give them: GPT-2 (Radford et al. 2019), GPT-3 (Brown et al. 2020, table 2.1),
#: Llama 2 (Touvron et al. 2023), Llama 3 (Llama Team 2024).
PUBLISHED: dict[str, ModelConfig] = {
    "GPT-2 small": ModelConfig(50257, 1024, 768, 12, 12, name="GPT-2 small"),
    "GPT-2 small (no biases)": ModelConfig(50257, 1024, 768, 12, 12, bias=False, name="GPT-2 small (no biases)"),
    "GPT-3 175B": ModelConfig(50257, 2048, 12288, 96, 96, name="GPT-3 175B"),
    "Llama-2-7B": ModelConfig(32000, 4096, 4096, 32, 32, 32, 11008, "swiglu", bias=False, tied=False, pos="rope",
                              norm="rmsnorm", name="Llama-2-7B"),
    "Llama-3-8B": ModelConfig(128256, 8192, 4096, 32, 32, 8, 14336, "swiglu", bias=False, tied=False, pos="rope",
                              norm="rmsnorm", name="Llama-3-8B"),
    "Llama-3-70B": ModelConfig(128256, 8192, 8192, 80, 64, 8, 28672, "swiglu", bias=False, tied=False, pos="rope",
                               norm="rmsnorm", name="Llama-3-70B"),
}


def from_gpt_config(c, strict: bool = True) -> ModelConfig:
    """The :class:`ModelConfig` of a course ``GPTConfig``: by default MiniGPT (GELU 4x, biases, tied, learned
    positions); notebook 15's options and a Llama model's (rope, rmsnorm, swiglu, relu2, n_kv_heads, bias=False,
    tied=False, ffn_hidden) are carried over, so the counts stay exact (ReLU^2 has GELU's two matrices).

    Two options this module does not count are refused with a clear error: qk_norm, and bias=False with
    LayerNorm (the course's LayerNorm keeps its bias); ``course_utils.modern.param_count`` counts them.
    ``strict=False`` lets both through: they change a few norm gains and biases but no matrix product, so the
    FLOP counts stay exact (the parameter counts do not)."""
    if c.qk_norm and strict:
        raise ConfigError("from_gpt_config: qk_norm=True adds norms on queries and keys that this module does not "
                          "count; use course_utils.modern.param_count for that model")
    if not c.bias and c.norm == "layernorm" and strict:
        raise ConfigError("from_gpt_config: bias=False with norm='layernorm' (the course's LayerNorm keeps its "
                          "bias) is not counted here; use course_utils.modern.param_count for that model")
    from .layers import ffn_width  # the feed-forward width rule of the model itself (no cycle: layers is below)

    ffn = "swiglu" if c.mlp == "swiglu" else "gelu"
    d_ff = None if ffn_width(c) == 4 * c.d_model else ffn_width(c)     # None: this module's own 4d default
    return ModelConfig(c.vocab_size, c.block_size, c.d_model, c.n_layers, c.n_heads, n_kv_heads=c.n_kv_heads,
                       d_ff=d_ff, ffn=ffn, bias=c.bias, tied=c.tied, pos=c.pos, norm=c.norm, name="MiniGPT")


# ---- parameters ---------------------------------------------------------------------------------------------------

def param_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter counts by part: token embedding, position embedding, attention, feed-forward, norms,
    output layer (0 when tied). Attention per layer: W_Q and W_O are d x d, W_K and W_V are d x (kv_heads *
    head_dim); feed-forward: 2 (GELU) or 3 (SwiGLU) matrices of d x d_ff."""
    d, L, b = cfg.d_model, cfg.n_layers, cfg.bias
    d_kv = cfg.kv_heads * cfg.head_dim
    attn = 2 * d * d + 2 * d * d_kv + (2 * d + 2 * d_kv if b else 0)
    f = cfg.ffn_width
    ffn = (2 if cfg.ffn == "gelu" else 3) * d * f
    if b:
        ffn += f + d if cfg.ffn == "gelu" else 2 * f + d
    per_norm = 2 * d if (cfg.norm == "layernorm" and b) else d
    return {
        "token embedding": cfg.vocab_size * d,
        "position embedding": cfg.n_ctx * d if cfg.pos == "learned" else 0,
        "attention": L * attn,
        "feed-forward": L * ffn,
        "norms": (2 * L + 1) * per_norm,
        "output layer": 0 if cfg.tied else cfg.vocab_size * d,
    }


def param_count(cfg: ModelConfig) -> int:
    """The exact number of parameters of the model ``cfg`` describes (the sum of :func:`param_breakdown`)."""
    return sum(param_breakdown(cfg).values())


def non_embedding_params(cfg: ModelConfig) -> int:
    """Parameters outside the token/position embeddings and the output layer (Kaplan et al.'s N)."""
    p = param_breakdown(cfg)
    return p["attention"] + p["feed-forward"] + p["norms"]


def matmul_params(cfg: ModelConfig) -> int:
    """Weights that take part in a matrix product for every token: the blocks' weight matrices and the output
    layer (V x d, used even when tied to the embedding). Embedding look-ups, biases and norms are left out."""
    d, L = cfg.d_model, cfg.n_layers
    d_kv = cfg.kv_heads * cfg.head_dim
    per_layer = 2 * d * d + 2 * d * d_kv + (2 if cfg.ffn == "gelu" else 3) * d * cfg.ffn_width
    return L * per_layer + cfg.vocab_size * d


# ---- memory -------------------------------------------------------------------------------------------------------

def _bytes_per(precision: str | float) -> float:
    if isinstance(precision, str):
        if precision not in BYTES_PER_PARAM:
            raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(BYTES_PER_PARAM)} "
                             "(or a number of bytes)")
        return BYTES_PER_PARAM[precision]
    if isinstance(precision, bool) or not isinstance(precision, int | float) or precision <= 0:
        raise ValueError(f"bytes per number should be > 0, got {precision!r}")
    return float(precision)


def _count(n, what: str = "n_params") -> int:
    if isinstance(n, bool) or not isinstance(n, int | float) or n < 0 or not math.isfinite(n):
        raise ValueError(f"{what} should be a non-negative number, got {n!r}")
    return n


def weight_bytes(n_params: int, precision: str | float = "fp32") -> float:
    """Bytes of the weights alone: n_params * bytes per number ("fp32" 4, "bf16"/"fp16" 2, "int8" 1, "int4" 0.5).
    Quantization scales, the KV cache and activations come on top."""
    return _count(n_params) * _bytes_per(precision)


def training_bytes(n_params: int, weights: str | float = "fp32", grads: str | float | None = None,
                   moments: str | float = "fp32", master: str | float | None = None) -> dict[str, float]:
    """Memory to train with AdamW, by part (activations not included): the weights, their gradients (in the
    weights' precision unless ``grads`` says otherwise), Adam's two moments m and v, and optionally a ``master``
    copy of the weights (fp32 master weights in mixed-precision training). Returns a dict with a "total".

    fp32 everywhere: 4 + 4 + 4 + 4 = 16 bytes per parameter. bf16 weights and gradients with fp32 master weights
    and moments: 2 + 2 + 4 + 4 + 4 = 16 bytes per parameter as well.
    """
    n = _count(n_params)
    parts = {"weights": n * _bytes_per(weights), "gradients": n * _bytes_per(grads if grads is not None else weights),
             "Adam m": n * _bytes_per(moments), "Adam v": n * _bytes_per(moments)}
    if master is not None:
        parts["master weights"] = n * _bytes_per(master)
    parts["total"] = sum(parts.values())
    return parts


def kv_cache_bytes(cfg: ModelConfig, T: int, batch: int = 1, precision: str | float = "bf16") -> float:
    """The key-value cache of ``batch`` sequences of ``T`` tokens: 2 (keys and values) * n_layers * kv_heads *
    head_dim * T * batch * bytes per number. Grouped-query attention shrinks it by n_heads / n_kv_heads."""
    _positive_int("T", T)
    _positive_int("batch", batch)
    return 2 * cfg.n_layers * cfg.kv_heads * cfg.head_dim * T * batch * _bytes_per(precision)


def attention_scores_bytes(T: int, precision: str | float = "bf16", heads: int = 1, batch: int = 1) -> float:
    """Bytes of the T x T score matrix (before softmax) of ``heads`` heads of one layer, if it is materialised.
    Fused kernels (FlashAttention) avoid storing it, but still do the T * T work."""
    _positive_int("T", T)
    _positive_int("heads", heads)
    _positive_int("batch", batch)
    return T * T * heads * batch * _bytes_per(precision)


# ---- compute ------------------------------------------------------------------------------------------------------

def forward_flops_per_token(cfg: ModelConfig, T: int | None = None, causal: bool = False) -> float:
    """FLOPs of one forward pass per token with a context of ``T`` tokens (default: n_ctx).

    2 * matmul_params (every weight is multiplied and added once per token) plus the attention term
    4 * n_layers * T * d_model (Q K^T and weights @ V, 2 T d_model each). ``causal=True`` counts only the unmasked
    half of the scores on average (T / 2 keys per query); ``causal=False`` is what a plain matrix product of the
    full T x T scores does (and what FlopCounterMode reports for the explicit path). Biases, norms, softmax and
    GELU are a few FLOPs per number and are left out.
    """
    T = cfg.n_ctx if T is None else _positive_int("T", T)
    keys = (T + 1) / 2 if causal else T
    return 2 * matmul_params(cfg) + 4 * cfg.n_layers * keys * cfg.n_heads * cfg.head_dim


def training_flops_per_token(cfg: ModelConfig, T: int | None = None, causal: bool = False) -> float:
    """FLOPs of one training step per token: 3 x :func:`forward_flops_per_token` (the backward pass computes two
    gradients for every matrix product, one for each operand). With the defaults that is
    6 * matmul_params + 12 * n_layers * T * d_attn, the course's one convention; ``causal=True`` gives Kaplan et
    al.'s 6N + 6LTd (half the score matrix). A course ``GPTConfig`` is converted with
    ``from_gpt_config(strict=False)``. ``FlopCounterMode`` counts exactly this on MiniGPT's forward + backward."""
    if not isinstance(cfg, ModelConfig):
        cfg = from_gpt_config(cfg, strict=False)
    return 3 * forward_flops_per_token(cfg, T, causal)


def training_flops(n_params: float, n_tokens: float) -> float:
    """C = 6 N D: forward (2 N per token) + backward (about 4 N per token: gradients for the inputs and for the
    weights) over D tokens. The attention term is left out, as in the rule."""
    return 6 * _count(n_params) * _count(n_tokens, "n_tokens")


def gpu_days(flops: float, peak_flops_per_s: float, utilisation: float = 0.4, n_gpus: int = 1) -> float:
    """Days of ``n_gpus`` GPUs to do ``flops`` at ``utilisation`` of their peak: flops / (peak * util * 86400 * n)."""
    _count(flops, "flops")
    if not peak_flops_per_s > 0:
        raise ValueError(f"peak_flops_per_s should be > 0, got {peak_flops_per_s!r}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation should be in (0, 1] (a fraction of the peak), got {utilisation!r}")
    _positive_int("n_gpus", n_gpus)
    return flops / (peak_flops_per_s * utilisation * 86_400 * n_gpus)


def fitting_gpus(n_bytes: float, sizes: dict[str, int] | None = None) -> list[str]:
    """The GPUs of ``sizes`` (default :data:`GPU_MEMORY_GIB`, name -> GiB) whose memory holds ``n_bytes``."""
    _count(n_bytes, "n_bytes")
    sizes = GPU_MEMORY_GIB if sizes is None else sizes
    return [name for name, gib in sizes.items() if n_bytes <= gib * GiB]


def _human(n: float, unit: str = "") -> str:
    for size, suffix in ((1e12, "T"), (1e9, "B" if not unit else "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.2f} {suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def summary(cfg: ModelConfig, T: int | None = None, precision: str = "bf16", batch: int = 1) -> str:
    """A few lines on ``cfg``: parameters, memory for inference (weights + KV cache at context T) and for
    training (bf16 weights and gradients, fp32 master weights and AdamW moments: 16 bytes per parameter, no
    activations), FLOPs per token, and which GPU memory sizes hold each."""
    T = cfg.n_ctx if T is None else T
    n = param_count(cfg)
    w = weight_bytes(n, precision)
    kv = kv_cache_bytes(cfg, T, batch, precision if precision in ("fp32", "bf16", "fp16") else "bf16")
    train = training_bytes(n, "bf16", moments="fp32", master="fp32")["total"]
    fwd = forward_flops_per_token(cfg, T)
    infer = w + kv

    def fits(b):
        names = fitting_gpus(b)
        if not names:
            return f"none (needs {math.ceil(b / (80 * GiB))} x 80 GiB)"
        return ", ".join(g.split(" (")[0] for g in names)

    kv_note = f"{cfg.kv_heads} kv heads of {cfg.n_heads}" if cfg.kv_heads != cfg.n_heads else "no GQA"
    return "\n".join([
        f"{cfg.name}: {n:,} parameters ({_human(n)}); d_model {cfg.d_model}, {cfg.n_layers} layers, "
        f"{cfg.n_heads} heads ({kv_note}), vocabulary {cfg.vocab_size:,}",
        f"weights in {precision}: {w / GB:,.2f} GB = {w / GiB:,.2f} GiB",
        f"KV cache, {batch} x {T:,} tokens: {kv / GB:,.2f} GB = {kv / GiB:,.2f} GiB",
        f"inference (weights + KV cache): {infer / GiB:,.2f} GiB -> fits in: {fits(infer)}",
        f"training with AdamW (16 bytes/param, no activations): {train / GiB:,.1f} GiB -> fits in: {fits(train)}",
        f"FLOPs per token at context {T:,}: forward {fwd:.3g} (2N = {2 * n:.3g}), training {3 * fwd:.3g}",
    ])
