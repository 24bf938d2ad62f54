"""The encoder family: a BERT-style masked language model built from the course's block (notebook 13).

An encoder is the mini-GPT with the causal mask removed: every position attends to every other one, so it sees
both sides of the text. It cannot be trained to predict the next token (it would see it), so BERT hides some
tokens and asks for them back, the *masked language model* objective:

    choose 15% of the positions; of the chosen ones replace 80% by a mask symbol, 10% by a random symbol,
    and keep 10% unchanged; the loss is the cross-entropy at the chosen positions only.

    inputs, targets = mask_tokens(ids, mask_id=V, n_real=V)          # ids (B, T) -> two (B, T) tensors
    model = MiniBERT(GPTConfig(vocab_size=V + 1, ...))                 # one extra symbol: the mask
    logits, loss = model(inputs, targets)                              # (B, T, V + 1), loss on chosen only

``IGNORE`` (-100, PyTorch's ``ignore_index``) marks the positions that are not scored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ShapeError, check_shape
from .model import MiniGPT

IGNORE = -100   # target value at positions that are not scored (F.cross_entropy's default ignore_index)


def apply_masking(ids: torch.Tensor, chosen: torch.Tensor, u: torch.Tensor, random_ids: torch.Tensor,
                  mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 rule with the random draws given, so that it is deterministic and testable.

    ids, chosen (bool), u (uniform in [0, 1)), random_ids: all of the same shape (any, e.g. (B, T)).
    A chosen position becomes ``mask_id`` if u < 0.8, ``random_ids`` if 0.8 <= u < 0.9, and stays itself otherwise.
    Returns (inputs, targets): targets hold the original id at chosen positions and ``IGNORE`` elsewhere.
    """
    for name, t in (("chosen", chosen), ("u", u), ("random_ids", random_ids)):
        if not isinstance(t, torch.Tensor) or t.shape != ids.shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ShapeError(f"{name} should have the shape of ids {tuple(ids.shape)}, got {got}")
    if chosen.dtype != torch.bool:
        raise TypeError("chosen should be a boolean tensor (True = this position is scored)")
    to_mask = chosen & (u < 0.8)
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids.to(ids.dtype), inputs)
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, targets


def mask_tokens(ids: torch.Tensor, mask_id: int, n_real: int, p: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw BERT's masking for a batch of token ids: each position is chosen with probability ``p``.

    ids: integer tensor of any shape, e.g. (B, T). Random replacements are drawn from the real symbols
    0..n_real-1 (never the mask). Returns (inputs, targets), both the shape of ids; see :func:`apply_masking`.
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int32, torch.int64):
        raise TypeError("ids should be an integer tensor of token ids")
    if not 0.0 < p < 1.0:
        raise ValueError(f"the masking probability p should be between 0 and 1, got {p}")
    if n_real < 1 or not 0 <= mask_id:
        raise ValueError(f"n_real should be >= 1 and mask_id >= 0, got n_real={n_real}, mask_id={mask_id}")
    dev = ids.device
    chosen = torch.rand(ids.shape, generator=generator).to(dev) < p
    u = torch.rand(ids.shape, generator=generator).to(dev)
    random_ids = torch.randint(n_real, ids.shape, generator=generator).to(dev)
    return apply_masking(ids, chosen, u, random_ids, mask_id)


class MiniBERT(MiniGPT):
    """The encoder: :class:`~course_utils.model.MiniGPT`'s embeddings, blocks and tied output layer, with
    bidirectional attention (no causal mask). The mask symbol is one more entry of the vocabulary.

    forward(idx: (B, T), targets: (B, T) or None, pad: (B, T) bool or None) -> (logits (B, T, V), loss or None).
    ``targets`` holds ``IGNORE`` where nothing is scored; ``pad`` is True at real tokens (a key-padding mask).
    """

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                pad: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_shape(idx, ("B", "T"), "idx (batch, time) of token ids")
        if idx.dtype not in (torch.long, torch.int32, torch.int64):
            raise TypeError(f"idx should hold integer token ids, got dtype {idx.dtype}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ShapeError(f"the model sees at most block_size={self.config.block_size} tokens, got {T}")
        mask = None
        if pad is not None:
            check_shape(pad, (B, T), "pad (batch, time), True at real tokens")
            mask = pad[:, None, None, :]                             # (B, 1, 1, T): keys that may be attended to
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x, causal=False, mask=mask)                    # the only change from the GPT: causal=False
        logits = self.ln_f(x) @ self.tok_emb.weight.T                # (B, T, V)
        loss = None
        if targets is not None:
            check_shape(targets, (B, T), "targets")
            loss = F.cross_entropy(logits.float().reshape(B * T, -1), targets.reshape(B * T), ignore_index=IGNORE)
        return logits, loss

    def generate(self, *args, **kwargs):
        raise NotImplementedError("an encoder sees both sides of every position, so it cannot write text left to "
                                  "right; use fill_in() to fill in masked positions, or a MiniGPT to generate")


@torch.no_grad()
def fill_in(model: MiniBERT, ids: torch.Tensor, blanks: torch.Tensor, mask_id: int,
            k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the positions ``blanks`` (bool, shape (T,)) of ``ids`` (T,) by the mask and ask the model.

    Returns (top_ids, top_probs), each (n_blanks, k): the k most probable symbols per blank, best first.
    """
    check_shape(ids, ("T",), "ids (time,)")
    check_shape(blanks, (ids.shape[0],), "blanks (time,) booleans")
    was_training = model.training
    model.eval()
    x = torch.where(blanks, torch.full_like(ids, mask_id), ids)[None]
    probs = torch.softmax(model(x)[0][0, blanks].float(), dim=-1)      # (n_blanks, V)
    probs[:, mask_id] = 0.0                                            # the mask is never an answer
    top = probs.topk(k, dim=-1)
    model.train(was_training)
    return top.indices, top.values

