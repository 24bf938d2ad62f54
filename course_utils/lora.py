"""LoRA written by hand (notebook 14): a frozen linear layer plus a trainable low-rank update.

    y = W x + b + (alpha / r) * B A x          W: (d_out, d_in) frozen,  A: (r, d_in),  B: (d_out, r)

A starts random and B starts at zero, so at step 0 the adapted layer computes exactly what the base layer does.
Training moves only A and B: r (d_in + d_out) numbers per adapted matrix instead of d_in d_out. Merging folds the
update into the weight, W' = W + (alpha / r) B A, so a merged model costs nothing extra at inference.

    add_lora(model, r=4)            wrap the attention projections of every block (``ffn=True``: the FFN too)
    trainable_counts(model)         (trainable, total) parameter counts
    merge_lora(model)               replace every LoRALinear by one nn.Linear holding W + (alpha / r) B A
    weights_checksum(model)         SHA-256 of the frozen base weights (proof that training left them alone)
    adapters_off(model)             a ``with`` block in which every adapter is switched off: the base model
    adapter_state(model)            the adapters' A and B by name (a small dict to keep, swap or save)
    load_adapter_state(model, s)    put a kept adapter state back (shapes checked)
    save_adapters(path, model)      write the adapter state atomically (an interrupt keeps the last good file)
    load_adapters(path, model)      read it back with ``torch.load(weights_only=True)``
    adam_training_bytes(...)        the memory of mixed-precision AdamW training, per parameter, written out

The course's :class:`~course_utils.model.MiniGPT` is not changed: its ``nn.Linear`` modules are swapped for
wrappers, in place, after the model is built.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import atomic_save
from .errors import ShapeError

ATTENTION = ("attn.w_q", "attn.w_k", "attn.w_v", "attn.w_o")   # the four projections of every block
FFN = ("ffn.w1", "ffn.w2")                                     # the feed-forward layer's two matrices


def _check_rank(r: int, d_in: int, d_out: int) -> None:
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"the rank r should be a whole number, got {r!r} ({type(r).__name__})")
    if not 1 <= r <= min(d_in, d_out):
        raise ValueError(f"the rank r should be between 1 and min(d_in, d_out) = {min(d_in, d_out)} for a "
                         f"({d_out} x {d_in}) weight, got r={r}; a larger r cannot raise the rank of B A")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: forward(x: (..., d_in)) -> (..., d_out).

    y = base(x) + (alpha / r) * (x A^T) B^T, with A: (r, d_in) drawn from N(0, 1/d_in) and B: (d_out, r) zero.
    ``alpha`` defaults to r (scale 1). The base layer's parameters get ``requires_grad=False``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        d_out, d_in = base.weight.shape
        _check_rank(r, d_in, d_out)
        alpha = float(r if alpha is None else alpha)
        if not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha should be a positive number, got {alpha}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        self.enabled = True                     # False: the layer computes base(x) only (see adapters_off)
        w = base.weight
        a = torch.randn(r, d_in, generator=generator, dtype=w.dtype, device="cpu") / math.sqrt(d_in)
        self.A = nn.Parameter(a.to(w.device))                                        # (r, d_in), random
        self.B = nn.Parameter(torch.zeros(d_out, r, dtype=w.dtype, device=w.device))  # (d_out, r), zero

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.in_features:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"LoRALinear expects x of shape (..., d_in={self.in_features}), got {got}")
        if not self.enabled:
            return self.base(x)
        return self.base(x) + self.scale * F.linear(F.linear(x, self.A), self.B)

    def delta_weight(self) -> torch.Tensor:
        """The update this adapter adds to the weight: (alpha / r) B A, shape (d_out, d_in), rank <= r."""
        return self.scale * (self.B @ self.A)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding W + (alpha / r) B A (and the same bias): the same function, no adapter."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                lin.bias.copy_(self.base.bias)
        return lin

    def extra_repr(self) -> str:
        return f"d_in={self.in_features}, d_out={self.out_features}, r={self.r}, alpha={self.alpha:g}"


@contextmanager
def adapters_off(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the ``with`` block every :class:`LoRALinear` of ``model`` computes its base layer only: the model
    is the frozen base model (the reference of preference tuning), bit for bit. The switches are restored after
    the block, also when it raises."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters to switch off (add them with add_lora)")
    before = {name: layer.enabled for name, layer in layers.items()}
    try:
        for layer in layers.values():
            layer.enabled = False
        yield model
    finally:
        for name, layer in layers.items():
            layer.enabled = before[name]


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every adapter's A and B, by parameter name ('blocks.0.attn.w_q.A', ...), on the CPU."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters (add them with add_lora)")
    return {f"{name}.{part}": getattr(layer, part).detach().cpu().clone()
            for name, layer in layers.items() for part in ("A", "B")}


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Copy a state from :func:`adapter_state` into the model's adapters, in place. Every adapter of the model must
    be in the state with the same shape (the error names the first one that is not). Returns the model."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters to load into (add them with add_lora first)")
    if not isinstance(state, dict):
        raise TypeError(f"state should be a dict from adapter_state, got {type(state).__name__}")
    wanted = {f"{name}.{part}": getattr(layer, part) for name, layer in layers.items() for part in ("A", "B")}
    missing = sorted(set(wanted) - set(state))
    extra = sorted(set(state) - set(wanted))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which the model does not"
        raise ValueError(f"the adapter state does not fit this model: it {what} "
                         f"(were the adapters added with the same targets?)")
    for key, p in wanted.items():
        if tuple(state[key].shape) != tuple(p.shape):
            raise ShapeError(f"adapter {key} has shape {tuple(p.shape)} in the model, {tuple(state[key].shape)} in "
                             f"the state (a different rank r?)")
    with torch.no_grad():
        for key, p in wanted.items():
            p.copy_(state[key].to(p.device, p.dtype))
    return model


def save_adapters(path: str | os.PathLike, model: nn.Module, extra: dict[str, Any] | None = None) -> Path:
    """Write the model's adapter state (and ``extra``: plain numbers and strings) to ``path`` atomically: to a
    temporary file in the same folder, then renamed over the old one, so an interrupt keeps the last good file."""
    blob = {"format": "lora-adapters-1", "adapters": adapter_state(model), "extra": dict(extra or {})}
    return atomic_save(blob, path)


def load_adapters(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, Any]:
    """Read a file of :func:`save_adapters` (``weights_only=True``: no code runs); with ``model``, load the
    adapters into it. Returns ``{"adapters": state, "extra": dict}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no adapter file at {path}: train the adapters first")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not an adapter file of save_adapters ({type(err).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != "lora-adapters-1":
        raise ValueError(f"{path} is not an adapter file of save_adapters")
    if model is not None:
        load_adapter_state(model, blob["adapters"])
    return blob


def _resolve(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def add_lora(model: nn.Module, r: int, alpha: float | None = None, targets: Sequence[str] = ATTENTION,
             ffn: bool = False, seed: int = 0) -> list[str]:
    """Freeze every parameter of ``model``, then wrap each ``nn.Linear`` whose name ends with one of ``targets``
    (plus :data:`FFN` when ``ffn=True``) in a :class:`LoRALinear` of rank r, in place. Returns the wrapped names.

    Only the A and B matrices are trainable afterwards. ``seed`` makes the random A matrices repeatable.
    """
    targets = tuple(targets) + (FFN if ffn else ())
    if not targets:
        raise ValueError("give at least one target layer name, e.g. targets=('attn.w_q', 'attn.w_v')")
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("this model already has LoRA adapters; merge them (merge_lora) or start from a copy")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(targets)]
    if not names:
        raise ValueError(f"no nn.Linear in the model has a name ending with {targets}")
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    for name in names:
        parent, child = _resolve(model, name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, generator=g))
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's adapters by name, e.g. {'blocks.0.attn.w_q': LoRALinear(...), ...}."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` of ``model`` by its merged ``nn.Linear`` (W + (alpha / r) B A), in place.

    The merged layers' parameters are trainable again (they are plain layers). Returns the model.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters to merge")
    for name, layer in layers.items():
        parent, child = _resolve(model, name)
        setattr(parent, child, layer.merged())
    return model


def lora_param_count(shapes: Iterable[tuple[int, int]], r: int) -> int:
    """Trainable numbers of rank-r adapters on weights of the given (d_out, d_in) shapes: sum of r (d_in + d_out)."""
    total = 0
    for shape in shapes:
        if len(shape) != 2:
            raise ShapeError(f"each weight shape should be (d_out, d_in), got {tuple(shape)}")
        d_out, d_in = shape
        _check_rank(r, d_in, d_out)
        total += r * (d_in + d_out)
    return total


def trainable_counts(model: nn.Module) -> tuple[int, int]:
    """(number of trainable parameters, number of all parameters) of ``model``."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def weights_checksum(model: nn.Module, include_lora: bool = False) -> str:
    """SHA-256 over the names and exact bytes of the model's parameters (without the LoRA A and B by default).

    Two models have the same checksum only if every base weight is bit for bit the same.
    """
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if not include_lora and name.rsplit(".", 1)[-1] in ("A", "B") and isinstance(
                model.get_submodule(name.rsplit(".", 1)[0]), LoRALinear):
            continue
        key = name.replace(".base.", ".")          # a wrapped layer's base weight keeps its unwrapped name
        h.update(key.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the tensors in an optimizer's state (for AdamW: exp_avg, exp_avg_sq and step per parameter)."""
    return sum(t.numel() * t.element_size() for state in optimizer.state.values()
               for t in state.values() if isinstance(t, torch.Tensor))


def adam_training_bytes(n_params: int, n_trainable: int | None = None, weight_bytes: int = 2,
                        grad_bytes: int = 2, master_bytes: int = 4, moment_bytes: int = 8) -> dict[str, int]:
    """Memory for the parameters of mixed-precision AdamW training, in bytes (activations not included).

    Every parameter is stored once in 16-bit (``weight_bytes`` = 2). Each *trained* parameter also needs its
    gradient (2), an fp32 master copy (4) and Adam's two fp32 moments m and v (4 + 4 = 8): 16 bytes per trained
    parameter in all, 2 per frozen one. ``n_trainable`` defaults to all parameters (full fine-tuning).
    Notebook 11 derives the same per-parameter accounting.
    """
    n_trainable = n_params if n_trainable is None else n_trainable
    for name, v in (("n_params", n_params), ("n_trainable", n_trainable)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} should be a whole number >= 0, got {v!r}")
    if n_trainable > n_params:
        raise ValueError(f"n_trainable={n_trainable:,} cannot exceed n_params={n_params:,}")
    parts = {"weights": n_params * weight_bytes, "gradients": n_trainable * grad_bytes,
             "master copy": n_trainable * master_bytes, "Adam moments": n_trainable * moment_bytes}
    parts["total"] = sum(parts.values())
    return parts


def singular_values(w: torch.Tensor) -> torch.Tensor:
    """Singular values of a matrix (d_out, d_in), largest first, computed in float64: (min(d_out, d_in),)."""
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ShapeError(f"singular_values expects a matrix (d_out, d_in), got {got}")
    return torch.linalg.svdvals(w.detach().double().cpu())


def energy_in_top(s: torch.Tensor, k: int) -> float:
    """Share of the squared Frobenius norm held by the k largest singular values: sum_{i<=k} s_i^2 / sum s_i^2.

    It is also 1 - (error of the best rank-k approximation)^2 / ||W||^2 (Eckart-Young).
    """
    if not isinstance(s, torch.Tensor) or s.dim() != 1:
        raise ShapeError("s should be a 1-D tensor of singular values (largest first)")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(s):
        raise ValueError(f"k should be between 1 and {len(s)}, got {k!r}")
    e = s.double() ** 2
    return float(e[:k].sum() / e.sum())


def low_rank_approx(w: torch.Tensor, k: int) -> torch.Tensor:
    """The best rank-k approximation of a matrix (d_out, d_in) in the Frobenius norm (truncated SVD)."""
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ShapeError(f"low_rank_approx expects a matrix (d_out, d_in), got {got}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(w.shape):
        raise ValueError(f"k should be between 1 and {min(w.shape)}, got {k!r}")
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    return ((u[:, :k] * s[:k]) @ vh[:k]).to(w.dtype)
