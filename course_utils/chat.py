"""Conversations as training data and as replies (notebook 18): the chat template, the loss mask, a greedy reply.

A conversation in SmolLM2's template (ChatML, see :func:`course_utils.llama.chat_prompt`) is a list of messages,
each written ``<|im_start|>{role}\\n{content}<|im_end|>\\n``. Supervised fine-tuning trains only on what the
assistant says: the tokens of each assistant reply and the ``<|im_end|>`` that ends it. Every other token (system,
user, the template's own tokens) gets the label :data:`IGNORE`, so it takes no part in the loss.

    ids, labels = encode_chat(tok, messages)     # two lists of equal length; labels[t] is ids[t] or IGNORE
    idx, labels = collate([...], pad_id)         # (B, T) tensors, right-padded; padding is IGNORE too
    text = reply(model, tok, messages)           # the model's greedy reply, stopped at <|im_end|>

Labels are aligned with the ids: the prediction made at position t is scored against ``labels[t + 1]``
(:func:`course_utils.sft.masked_cross_entropy` shifts them), as in Hugging Face's convention.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence

import torch

from .llama import DEFAULT_SYSTEM_PROMPT, chat_prompt

IGNORE = -100          # the label of a token that does not count in the loss (F.cross_entropy's ignore_index)
ROLES = ("system", "user", "assistant")


def _check_messages(messages: Sequence[dict]) -> None:
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"messages should be a non-empty list of {{'role': ..., 'content': ...}} dicts, "
                         f"got {messages!r:.80}")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"message {k} should be a dict with 'role' in {ROLES} and a str 'content', "
                             f"got {m!r:.80}")


def template_pieces(messages: Sequence[dict]) -> list[tuple[str, bool]]:
    """The conversation's text in SmolLM2's template, cut into pieces: (text, trained). The trained pieces are the
    assistant replies with their ``<|im_end|>``; a conversation that does not open with a system message gets the
    default one. ``"".join(text for text, _ in pieces)`` is ``llama.chat_prompt(messages, False)``."""
    _check_messages(messages)
    pieces: list[tuple[str, bool]] = []
    if messages[0]["role"] != "system":
        pieces.append((f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n", False))
    for m in messages:
        if m["role"] == "assistant":
            pieces += [("<|im_start|>assistant\n", False), (m["content"] + "<|im_end|>", True), ("\n", False)]
        else:
            pieces.append((f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n", False))
    return pieces


def encode_chat(tok, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its labels (same length): ``labels[t] = ids[t]`` for the tokens of every
    assistant reply and its ``<|im_end|>``, :data:`IGNORE` for all others. Each piece is encoded on its own, so
    a reply's tokens are exactly those the model produces after ``<|im_start|>assistant\\n``.

    Raises ValueError for a conversation without an assistant turn (nothing to train on) or an empty reply."""
    _check_messages(messages)
    if not any(m["role"] == "assistant" for m in messages):
        roles = [m["role"] for m in messages]
        raise ValueError(f"the conversation has no assistant turn (roles {roles}): there is nothing to train on; "
                         f"add {{'role': 'assistant', 'content': ...}} with the reply to learn")
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in template_pieces(messages):
        piece = tok.encode(text)
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return ids, labels


def collate(examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (ids, labels) pairs of different lengths into two (B, T) long tensors, padded on the right with
    ``pad_id`` (ids) and :data:`IGNORE` (labels). Attention is causal, so padding after a sequence changes
    nothing before it."""
    if not examples:
        raise ValueError("collate needs at least one (ids, labels) example")
    for k, (ids, labels) in enumerate(examples):
        if len(ids) != len(labels) or not ids:
            raise ValueError(f"example {k}: ids ({len(ids)}) and labels ({len(labels)}) should have the same, "
                             f"non-zero length")
    T = max(len(ids) for ids, _ in examples)
    idx = torch.full((len(examples), T), int(pad_id), dtype=torch.long)
    lab = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for b, (ids, labels) in enumerate(examples):
        idx[b, :len(ids)] = torch.tensor(list(ids))
        lab[b, :len(labels)] = torch.tensor(list(labels))
    return idx, lab


def stop_ids(tok) -> tuple[int, ...]:
    """The ids that end an assistant's reply: ``<|im_end|>`` and ``<|endoftext|>`` (those the vocabulary has)."""
    return tuple(tok.special_tokens[s] for s in ("<|im_end|>", "<|endoftext|>") if s in tok.special_tokens)


@torch.no_grad()
def reply(model, tok, messages: Sequence[dict], max_new_tokens: int = 24) -> str:
    """The model's greedy reply to a conversation (the template with the generation prompt), decoded, stopped at
    ``<|im_end|>`` (not included) or after ``max_new_tokens`` tokens. Uses the model's key-value cache."""
    _check_messages(messages)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens should be a whole number >= 1, got {max_new_tokens!r}")
    prompt = tok.encode(chat_prompt(messages))
    room = model.config.block_size - len(prompt)
    if room < 1:
        raise ValueError(f"the conversation is {len(prompt)} tokens; the model sees at most "
                         f"{model.config.block_size}")
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    stops = set(stop_ids(tok))
    out: list[int] = []
    try:
        cache: list[dict] = [{} for _ in model.blocks]
        logits, _ = model(torch.tensor([prompt], device=dev), cache=cache)
        for _ in range(min(max_new_tokens, room)):
            nxt = int(logits[0, -1].argmax())
            if nxt in stops:
                break
            out.append(nxt)
            logits, _ = model(torch.tensor([[nxt]], device=dev), cache=cache)
    finally:
        model.train(was_training)
    return tok.decode(out)


# ---- scoring replies ---------------------------------------------------------------------------------------------

def json_answer(text: str) -> str | None:
    """The answer of a reply that is exactly one JSON object ``{"answer": ...}`` (a string or a number, surrounding
    whitespace allowed), as a string; None for any other reply (not JSON, other keys, a list, ...)."""
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(obj, dict) or set(obj) != {"answer"}:
        return None
    value = obj["answer"]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value)


def _plain(text: str) -> str:
    """Lower case, accents removed ('Bogotá' -> 'bogota'), curly apostrophes straightened."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def mentions(text: str, answer: str | int) -> bool:
    """Whether ``text`` contains ``answer`` as a whole word or number, ignoring case and accents
    ('It is Bogotá.' mentions 'Bogota'; '125' does not mention 25)."""
    pattern = r"(?<![\w])" + re.escape(_plain(str(answer))) + r"(?![\w])"
    return re.search(pattern, _plain(text)) is not None


DECLINES = ("i don't know", "i do not know", "not aware of", "no country called", "no country named",
            "does not exist", "doesn't exist", "is not a real", "isn't a real", "fictional", "not sure",
            "i'm sorry", "i couldn't find", "i could not find", "no information", "not a country",
            "i don't have information", "i don't have any information", "i do not have information",
            "not specified", "is unknown")


def declines(text: str) -> bool:
    """Whether a reply says it does not know (one of :data:`DECLINES`, ignoring case) instead of answering."""
    plain = _plain(text)
    return any(phrase in plain for phrase in DECLINES)
