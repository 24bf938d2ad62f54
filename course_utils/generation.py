"""From logits to text (notebook 09): greedy choice, sampling with a temperature, top-k and top-p filtering,
and generation with a key-value cache.

Every filtering function works on logits of shape (..., V): the last dim is the vocabulary, any leading dims
(batch, time) are kept. A filter returns logits of the same shape with the removed tokens set to -inf, so the
softmax gives them probability exactly 0 and renormalises the rest.

    greedy(logits)                      -> the most likely token id, shape (...)
    apply_temperature(logits, T)        -> logits / T     (T < 1 sharpens, T > 1 flattens)
    top_k_filter(logits, k)             -> keeps exactly the k largest logits
    top_p_filter(logits, p)             -> keeps the smallest set of most likely tokens whose mass is >= p
    probabilities(logits, ...)          -> the distribution the next token is drawn from, shape (..., V)
    sample(logits, ...)                 -> one token id drawn from it, shape (...)
    generate(model, idx, n, ...)        -> idx with n new tokens appended, using the model's key-value cache
    generate_no_cache(model, idx, n)    -> the same, recomputing the whole context at every step
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ShapeError

__all__ = ["greedy", "apply_temperature", "top_k_filter", "top_p_filter", "probabilities", "sample",
           "next_token", "generate", "generate_no_cache", "next_token_distribution", "attention_maps",
           "CacheTiming", "step_times", "time_generation", "torch_threads"]


# ---- input checks ---------------------------------------------------------------------------------------------

def _check_logits(logits: torch.Tensor, name: str = "logits") -> None:
    if not isinstance(logits, torch.Tensor):
        raise ShapeError(f"{name} should be a torch.Tensor of shape (..., V), got {type(logits).__name__}")
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ShapeError(f"{name} should have shape (..., V) with V >= 1 (the vocabulary is the last dim), "
                         f"got {tuple(logits.shape)}")
    if not torch.is_floating_point(logits):
        raise TypeError(f"{name} should be floating point (one score per token), got dtype {logits.dtype}")


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise TypeError(f"temperature should be a number > 0, got {type(temperature).__name__}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature should be a finite number > 0, got {temperature} "
                         "(for temperature 0, use greedy decoding: greedy=True)")
    return float(temperature)


def _check_k(k: int, V: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"top_k should be an int between 1 and V={V}, got {type(k).__name__}")
    if not 1 <= k <= V:
        raise ValueError(f"top_k should be between 1 and V={V} (the vocabulary size), got {k}")
    return k


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float):
        raise TypeError(f"top_p should be a number in (0, 1], got {type(p).__name__}")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p should be in (0, 1] (a probability mass to keep), got {p}")
    return float(p)


# ---- from logits to the next token ----------------------------------------------------------------------------

def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token: argmax over the last dim. logits (..., V) -> ids (...), dtype long.

    Ties go to the lowest id (torch.argmax's rule), so greedy decoding is deterministic.
    """
    _check_logits(logits)
    return logits.argmax(dim=-1)


_greedy_choice = greedy   # ``generate`` and ``next_token`` have an argument called greedy


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature, shape (..., V) kept. softmax(z / T): T -> 0 approaches greedy, T -> inf uniform."""
    _check_logits(logits)
    return logits / _check_temperature(temperature)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the k largest logits along the last dim, set the others to -inf. (..., V) -> (..., V).

    With ties at the k-th value, exactly k tokens are still kept (those torch.topk picks), never more.
    """
    _check_logits(logits)
    k = _check_k(k, logits.shape[-1])
    if k == logits.shape[-1]:
        return logits.clone()
    idx = torch.topk(logits, k, dim=-1).indices
    out = torch.full_like(logits, float("-inf"))
    return out.scatter(-1, idx, logits.gather(-1, idx))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability mass is >= p.

    logits (..., V) -> (..., V), the other tokens set to -inf. Sort the probabilities in decreasing order; a
    token is kept when the mass of the tokens before it is still < p (so the most likely one is always kept).
    p = 1 keeps every token.
    """
    _check_logits(logits)
    p = _check_p(p)
    if p == 1.0:
        return logits.clone()
    probs = torch.softmax(logits.float(), dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep_sorted = mass_before < p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def probabilities(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """The distribution the next token is drawn from: temperature, then top-k, then top-p, then softmax.

    logits (..., V) -> probabilities (..., V), each row summing to 1 (filtered tokens get exactly 0).
    """
    z = apply_temperature(logits.float() if isinstance(logits, torch.Tensor) else logits, temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from ``probabilities(logits, temperature, top_k, top_p)``. (..., V) -> ids (...).

    Pass a seeded ``torch.Generator`` to make the draw reproducible.
    """
    probs = probabilities(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)
    return ids.reshape(probs.shape[:-1])


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, greedy: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The next token for each row of logits (..., V): the argmax if ``greedy``, else a sample. -> ids (...)."""
    if greedy:
        return _greedy_choice(logits)
    return sample(logits, temperature, top_k, top_p, generator)


# ---- generation -----------------------------------------------------------------------------------------------

def _check_generate_args(model, idx: torch.Tensor, max_new_tokens: int) -> int:
    if not hasattr(model, "config") or not hasattr(model.config, "block_size"):
        raise TypeError("model should be a MiniGPT (it needs model.config.block_size)")
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        got = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ShapeError(f"idx should be a (B, T) tensor of token ids (a batch of prompts), got {got}; "
                         "for one prompt use idx[None] or torch.tensor([ids])")
    if idx.shape[1] < 1:
        raise ShapeError(f"idx should hold at least one token per row (B, T >= 1), got {tuple(idx.shape)}")
    if idx.dtype not in (torch.long, torch.int32, torch.int64):
        raise TypeError(f"idx should hold integer token ids, got dtype {idx.dtype}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens should be an int >= 0, got {max_new_tokens!r}")
    return model.config.block_size


def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, greedy: bool = False, use_cache: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Append ``max_new_tokens`` tokens to each prompt: idx (B, T) -> (B, T + max_new_tokens).

    Each step turns the logits of the last position into the next token (``next_token``: greedy, or a sample
    with temperature / top-k / top-p, drawn with ``generator`` if given).

    With ``use_cache=True`` (the default) the model keeps every layer's keys and values (a key-value cache):
    the first step runs the whole prompt once, and every later step feeds only the newest token, so a step
    costs one position instead of T. The model's position embeddings are absolute and its context is at most
    ``block_size`` tokens, so a cache cannot simply slide: once the sequence is longer than ``block_size``,
    generation falls back to recomputing the cropped window (the last ``block_size`` tokens) at every step,
    exactly as ``generate_no_cache`` does. Either way the tokens are the same as without a cache.

    On the CPU the one-token steps through the cache run on a single thread (see ``_decode``); the thread count
    is restored afterwards.

    The model is put in eval mode for the call (no dropout) and restored afterwards.
    """
    block_size = _check_generate_args(model, idx, max_new_tokens)
    if not greedy:   # check the sampling settings once, before any work
        _check_temperature(temperature)
        if top_k is not None:
            _check_k(top_k, model.config.vocab_size)
        if top_p is not None:
            _check_p(top_p)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():   # like no_grad, with less bookkeeping per operation
            idx = _decode(model, idx, max_new_tokens, block_size, temperature, top_k, top_p, greedy, use_cache,
                          generator)
    finally:
        model.train(was_training)
    # tensors made under inference_mode cannot take part in autograd later: hand back an ordinary tensor
    return idx.clone()


@contextmanager
def torch_threads(n: int):
    """Run the body with ``n`` CPU threads for PyTorch's operations (``torch.set_num_threads``), then restore."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads should be an int >= 1, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def decode_weights(model) -> list[tuple] | None:
    """The plain tensors one decoding step needs, block by block, with W_Q, W_K, W_V stacked into one (3d, d)
    matrix so that a step makes one matrix product for all three. ``None`` for a model that is not the standard
    pre-norm MiniGPT (no residuals or no LayerNorm, as in notebook 07's experiments): then the model's own
    forward is used. Build it once per ``generate`` call: the weights must not change while it is in use."""
    from .model import LayerNorm, is_modern

    layers = []
    if is_modern(model.config):               # notebook 15's options: the model's own forward
        return None
    for block in model.blocks:
        if not (block.residual and isinstance(block.ln1, LayerNorm) and isinstance(block.ln2, LayerNorm)):
            return None
        a, f = block.attn, block.ffn
        w_qkv = torch.cat([a.w_q.weight, a.w_k.weight, a.w_v.weight])
        b_qkv = None if a.w_q.bias is None else torch.cat([a.w_q.bias, a.w_k.bias, a.w_v.bias])
        layers.append((block.ln1, w_qkv, b_qkv, a.w_o.weight, a.w_o.bias, block.ln2,
                       f.w1.weight, f.w1.bias, f.w2.weight, f.w2.bias, a.n_heads))
    return layers


def decode_step(model, token: torch.Tensor, cache: list[dict], layers: list[tuple]) -> torch.Tensor:
    """One generation step through the key-value cache: token (B, 1) -> logits (B, 1, V); the cache grows by one.

    The same arithmetic as ``model(token, cache=cache)`` (tested equal), written as a straight line of tensor
    operations: for a single new token each operation touches a few hundred numbers, so the fixed cost of
    calling a module (hooks, checks, dropout in eval mode) is most of the time. ``layers`` is
    ``decode_weights(model)``. One query may look at every cached key, so no mask is needed.
    """
    B = token.shape[0]
    past = cache[0]["k"].shape[2]
    x = F.embedding(token, model.tok_emb.weight) + model.pos_emb.weight[past]         # (B, 1, d)
    d = x.shape[-1]
    for (ln1, w_qkv, b_qkv, w_o, b_o, ln2, w1, b1, w2, b2, h), c in zip(layers, cache, strict=True):
        qkv = F.linear(F.layer_norm(x, (d,), ln1.weight, ln1.bias, ln1.eps), w_qkv, b_qkv)   # (B, 1, 3d)
        q, k, v = qkv.view(B, 3, h, 1, d // h).unbind(1)                                   # each (B, h, 1, d_h)
        c["k"] = k = torch.cat([c["k"], k], dim=2)
        c["v"] = v = torch.cat([c["v"], v], dim=2)
        att = F.scaled_dot_product_attention(q, k, v)                                     # (B, h, 1, d_h)
        x = x + F.linear(att.reshape(B, 1, d), w_o, b_o)
        x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, (d,), ln2.weight, ln2.bias, ln2.eps), w1, b1)), w2, b2)
    ln_f = model.ln_f
    x = F.layer_norm(x, (d,), ln_f.weight, ln_f.bias, ln_f.eps)
    return x @ model.tok_emb.weight.T                                                     # (B, 1, V)


def _decode(model, idx, max_new_tokens, block_size, temperature, top_k, top_p, greedy, use_cache, generator,
            times: list[float] | None = None):
    """The decoding loop of ``generate`` (see there). If ``times`` is a list, each step's seconds go into it.

    On the CPU, steps that feed one new token through the cache run on one thread: their operations act on a
    few hundred numbers, where splitting the work across threads costs more than it saves (on a busy machine,
    many times more). Steps that run a whole window keep the thread count the call started with.
    """
    cache: list[dict] | None = None
    layers = decode_weights(model) if use_cache else None
    threads = torch.get_num_threads()
    try:
        for _ in range(max_new_tokens):
            if times is not None:
                t0 = time.perf_counter()
            T = idx.shape[1]
            if use_cache and T <= block_size:
                if cache is None:                       # first step: run the prompt, filling the cache
                    cache = [{} for _ in range(len(model.blocks))]
                    logits, _ = model(idx, cache=cache)
                else:                                   # later steps: only the newest token
                    if idx.device.type == "cpu" and torch.get_num_threads() != 1:
                        torch.set_num_threads(1)
                    if layers is None:
                        logits, _ = model(idx[:, -1:], cache=cache)
                    else:
                        logits = decode_step(model, idx[:, -1:], cache, layers)
            else:                                       # no cache, or the window no longer fits: recompute
                cache = None
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
                logits, _ = model(idx[:, -block_size:])
            nxt = next_token(logits[:, -1, :].float(), temperature, top_k, top_p, greedy, generator)
            idx = torch.cat([idx, nxt[:, None].to(idx.dtype)], dim=1)
            if times is not None:
                times.append(time.perf_counter() - t0)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return idx


def generate_no_cache(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``generate`` without the key-value cache: every step recomputes the last ``block_size`` tokens."""
    return generate(model, idx, max_new_tokens, temperature, top_k, top_p, greedy, use_cache=False,
                    generator=generator)


# ---- looking inside -------------------------------------------------------------------------------------------

@torch.no_grad()
def next_token_distribution(model, idx: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """The model's distribution over the token after the prompt idx (T,) or (1, T) -> probabilities (V,).

    The prompt is cropped to its last ``block_size`` tokens.
    """
    if isinstance(idx, torch.Tensor) and idx.dim() == 1:
        idx = idx[None]
    block_size = _check_generate_args(model, idx, 0)
    if idx.shape[0] != 1:
        raise ShapeError(f"next_token_distribution takes one prompt, (T,) or (1, T); got {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(idx[:, -block_size:])
    finally:
        model.train(was_training)
    return probabilities(logits[0, -1].float(), temperature, top_k, top_p)


@torch.no_grad()
def attention_maps(model, idx: torch.Tensor) -> torch.Tensor:
    """Every head's attention weights for one sequence: idx (T,) or (1, T) -> (n_layers, n_heads, T, T).

    Row i of a map is how much position i looks at each position j <= i (rows sum to 1). The weights come
    from the hand-built attention path (``keep_weights``), which computes the same outputs as the fast one.
    """
    if isinstance(idx, torch.Tensor) and idx.dim() == 1:
        idx = idx[None]
    block_size = _check_generate_args(model, idx, 0)
    if idx.shape[0] != 1 or idx.shape[1] > block_size:
        raise ShapeError(f"attention_maps takes one sequence of at most block_size={block_size} tokens, "
                         f"(T,) or (1, T); got {tuple(idx.shape)}")
    attns = [block.attn for block in model.blocks]
    was_training = model.training
    model.eval()
    try:
        for a in attns:
            a.keep_weights = True
        model(idx)
        maps = torch.stack([a.last_weights[0] for a in attns])
    finally:
        for a in attns:
            a.keep_weights = False
            a.last_weights = None
        model.train(was_training)
    return maps


# ---- timing ---------------------------------------------------------------------------------------------------

@dataclass
class CacheTiming:
    """Seconds and tokens/s for greedy generation with and without the key-value cache, and whether the
    two produced the same tokens."""

    new_tokens: int
    seconds_cache: float
    seconds_no_cache: float
    same_tokens: bool

    @property
    def tokens_per_s_cache(self) -> float:
        return self.new_tokens / self.seconds_cache

    @property
    def tokens_per_s_no_cache(self) -> float:
        return self.new_tokens / self.seconds_no_cache

    @property
    def speedup(self) -> float:
        return self.seconds_no_cache / self.seconds_cache

    def __str__(self) -> str:
        return (f"{self.new_tokens} new tokens: with cache {self.seconds_cache:.3f} s "
                f"({self.tokens_per_s_cache:,.0f} tokens/s), without {self.seconds_no_cache:.3f} s "
                f"({self.tokens_per_s_no_cache:,.0f} tokens/s): {self.speedup:.1f}x faster; "
                f"same tokens: {self.same_tokens}")


def step_times(model, idx: torch.Tensor, max_new_tokens: int, use_cache: bool = True) -> list[float]:
    """Seconds each step of greedy generation from idx (B, T) took, one per new token.

    With the cache the first step also runs the whole prompt; later steps process one position each.
    """
    block_size = _check_generate_args(model, idx, max_new_tokens)
    times: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            _decode(model, idx, max_new_tokens, block_size, 1.0, None, None, True, use_cache, None, times)
    finally:
        model.train(was_training)
    return times


def time_generation(model, idx: torch.Tensor, max_new_tokens: int, repeats: int = 3,
                    warmup: bool = True) -> CacheTiming:
    """Time greedy generation of ``max_new_tokens`` from the prompt idx (B, T), with and without the cache.

    Each way runs once to warm up (unless ``warmup=False``), then ``repeats`` times, the two ways taking turns;
    the best (smallest) time of each is kept, which is the least disturbed by whatever else the machine is doing.
    """
    if repeats < 1:
        raise ValueError(f"repeats should be >= 1, got {repeats}")

    def run(use_cache: bool) -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        out = generate(model, idx, max_new_tokens, greedy=True, use_cache=use_cache)
        return time.perf_counter() - start, out

    if warmup:
        run(True), run(False)
    times: dict[bool, list[float]] = {True: [], False: []}
    outs: dict[bool, torch.Tensor] = {}
    for _ in range(repeats):
        for use_cache in (True, False):
            t, outs[use_cache] = run(use_cache)
            times[use_cache].append(t)
    return CacheTiming(max_new_tokens, min(times[True]), min(times[False]), bool(torch.equal(outs[True], outs[False])))
