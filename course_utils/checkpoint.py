"""Checkpoints of a MiniGPT: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint is one dict of plain types and tensors only (so ``weights_only=True`` can load it, and loading a
file never runs code from it)::

    {"format": 1, "model": state_dict, "optimizer": state_dict or None, "config": GPTConfig as a dict,
     "vocab": the tokenizer's characters (list of str) or None, "step": int, "elapsed": seconds trained,
     "losses": {"step": [...], "train": [...], "val_step": [...], "val": [...]}, "extra": dict}

Writing goes to a temporary file in the same folder first, then ``os.replace`` renames it over the old one:
a crash or an interrupt in the middle of a save leaves the previous checkpoint whole, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .model import GPTConfig, MiniGPT
from .tokenizers import CharTokenizer

FORMAT = 1


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: into a temporary file in the same folder, flushed to disk, then
    renamed over the old file. An interrupt leaves the old file whole and removes the partial one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)          # atomic on POSIX and Windows: the old file or the new one, never half
    except BaseException:              # KeyboardInterrupt included: remove the partial temporary file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def save_checkpoint(path: str | os.PathLike, model: MiniGPT, optimizer: torch.optim.Optimizer | None = None,
                    tokenizer: CharTokenizer | None = None, step: int = 0, elapsed: float = 0.0,
                    losses: dict[str, list] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Save everything needed to resume training (or to generate text) to ``path``, atomically. Returns the path."""
    state = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": model.config_dict(),
        "vocab": list(tokenizer.itos) if tokenizer is not None else None,
        "step": int(step),
        "elapsed": float(elapsed),
        "losses": {k: [float(x) for x in v] for k, v in (losses or {}).items()},
        "extra": dict(extra or {}),
    }
    return atomic_save(state, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict with ``weights_only=True`` (tensors and plain types only; no code is run)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}. Train a model first (notebook 08, or "
                                "`python -m course_utils.train --text FILE --minutes M --out CKPT`).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as err:        # a file of another kind: pickle / zip errors of many types, all the same here
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise ValueError(f"{path} is not a course checkpoint (format {FORMAT}): torch.load cannot read it "
                         f"({type(err).__name__}: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise ValueError(f"{path} is not a course checkpoint (format {FORMAT})")
    return state


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[MiniGPT, CharTokenizer | None, dict[str, Any]]:
    """Rebuild the MiniGPT stored in a checkpoint: returns (model in eval mode, tokenizer or None, checkpoint)."""
    state = load_checkpoint(path, map_location="cpu")
    model = MiniGPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    tok = CharTokenizer("".join(state["vocab"])) if state.get("vocab") else None
    return model, tok, state
