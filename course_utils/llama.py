"""A Llama-architecture GGUF file (SmolLM2-135M-Instruct) in the course's own model, tokenizer and chat format.

SmolLM2-135M is a Llama: 30 pre-norm blocks of width 576, RMSNorm, rotary embeddings (base 100,000), grouped-query
attention (9 query heads sharing 3 key/value heads), a SwiGLU feed-forward of width 1,536, no biases, and an
output layer tied to the token embedding. Every one of these is an option of the course's ``GPTConfig``, so the
weights of the file go straight into a ``MiniGPT``; the tests prove its logits equal transformers' own Llama.

    model = load_gguf_model()                                  # MiniGPT, float32, eval mode
    tok = load_tokenizer()                                     # a course BPETokenizer with SmolLM2's vocabulary
    prompt = chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
    idx = torch.tensor([tok.encode(prompt)])
    out = generate(model, idx, 30, greedy=True)                # course_utils.generation.generate
    print(tok.decode(out[0, idx.shape[1]:].tolist()))

The query and key weights stay as the file stores them. Rotary embeddings rotate pairs of coordinates of each
head; the course (like llama.cpp) pairs neighbours (2i, 2i+1), while Hugging Face's Llama pairs i with i + d/2
("rotate half"). llama.cpp's converter therefore reorders the rows of W_Q and W_K within each head (row 2i of a
head is Hugging Face's row i, row 2i+1 is its row i + d/2, d the head size), and
transformers reorders them back when it reads a GGUF file. Both models compute the same attention scores: a
reordering of the head's coordinates is a permutation matrix P applied to both q and k, and
(P q) . (P k) = q^T P^T P k = q . k because P^T P = I; the rotation by the same angles acts on the same pairs of
numbers in both layouts, only stored at different places.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .bpe import BPETokenizer
from .errors import ShapeError
from .gguf_file import GGUFFileError, load_tensors, model_path, read_metadata
from .model import GPTConfig, MiniGPT

# ---- the model ---------------------------------------------------------------------------------------------------

# GGUF tensor name (with N for the block number) -> the course's parameter name
TENSOR_NAMES = {
    "token_embd.weight": "tok_emb.weight",
    "output_norm.weight": "ln_f.weight",
    "output.weight": "lm_head.weight",
    "blk.N.attn_norm.weight": "blocks.N.ln1.weight",
    "blk.N.attn_q.weight": "blocks.N.attn.w_q.weight",
    "blk.N.attn_k.weight": "blocks.N.attn.w_k.weight",
    "blk.N.attn_v.weight": "blocks.N.attn.w_v.weight",
    "blk.N.attn_output.weight": "blocks.N.attn.w_o.weight",
    "blk.N.ffn_norm.weight": "blocks.N.ln2.weight",
    "blk.N.ffn_gate.weight": "blocks.N.ffn.w1.weight",
    "blk.N.ffn_up.weight": "blocks.N.ffn.w3.weight",
    "blk.N.ffn_down.weight": "blocks.N.ffn.w2.weight",
}


def course_name(gguf_name: str) -> str:
    """The course's parameter name for a GGUF tensor: ``blk.3.ffn_gate.weight`` -> ``blocks.3.ffn.w1.weight``."""
    parts = gguf_name.split(".")
    if len(parts) > 2 and parts[0] == "blk" and parts[1].isdigit():
        key = ".".join(["blk", "N", *parts[2:]])
        if key in TENSOR_NAMES:
            return TENSOR_NAMES[key].replace(".N.", f".{parts[1]}.")
    elif gguf_name in TENSOR_NAMES:
        return TENSOR_NAMES[gguf_name]
    raise GGUFFileError(f"tensor {gguf_name!r} is not part of a Llama model the course knows "
                        f"(expected names such as {', '.join(list(TENSOR_NAMES)[:4])}, ...)")


def _gguf_name(name: str) -> str:
    """The GGUF name of a course parameter: ``blocks.3.ffn.w1.weight`` -> ``blk.3.ffn_gate.weight``."""
    parts = name.split(".")
    number = parts[1] if len(parts) > 2 and parts[0] == "blocks" else None
    key = ".".join(["blocks", "N", *parts[2:]]) if number else name
    for g, c in TENSOR_NAMES.items():
        if c == key:
            return g.replace(".N.", f".{number}.") if number else g
    return name


def config_from_gguf(meta: dict | str | Path | None = None, has_output: bool = False) -> GPTConfig:
    """The ``GPTConfig`` of a Llama GGUF file, from its metadata (a dict from ``read_metadata``, or a path;
    default: the course's model). ``has_output``: the file has its own output layer (then ``tied=False``)."""
    if not isinstance(meta, dict):
        meta = read_metadata(meta)
    if meta["architecture"] != "llama":
        raise GGUFFileError(f"this file holds a {meta['architecture']!r} model; the course reads 'llama' ones")
    if meta["head_dim"] != meta["d_model"] // meta["n_heads"]:
        raise GGUFFileError(f"head size {meta['head_dim']} is not d_model / n_heads = "
                            f"{meta['d_model']} / {meta['n_heads']}: the course's attention cannot hold it")
    return GPTConfig(vocab_size=meta["vocab_size"], block_size=meta["context_length"], d_model=meta["d_model"],
                     n_heads=meta["n_heads"], n_layers=meta["n_layers"], n_kv_heads=meta["n_kv_heads"],
                     pos="rope", norm="rmsnorm", mlp="swiglu", bias=False, tied=not has_output,
                     rope_base=meta["rope_base"], norm_eps=meta["norm_eps"], ffn_hidden=meta["ffn_hidden"],
                     dropout=0.0)


def load_gguf_model(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> MiniGPT:
    """A ``MiniGPT`` holding the weights of a Llama GGUF file (default: the course's SmolLM2-135M-Instruct),
    dequantized to ``dtype``, in eval mode, on the CPU (move it with ``.to(device)``).

    Raises :class:`GGUFFileError` naming the tensor for a tensor the model lacks, a missing one, or a wrong shape.
    """
    path = model_path() if path is None else Path(path)
    meta = read_metadata(path)
    weights = load_tensors(path)
    config = config_from_gguf(meta, has_output="output.weight" in weights)
    state = {course_name(name): w for name, w in weights.items()}
    with torch.device("meta"):                    # no memory and no random init for weights we overwrite
        model = MiniGPT(config)
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    by_course = {course_name(n): n for n in weights}
    extra = sorted(set(state) - set(expected))
    if extra:
        raise GGUFFileError(f"tensor {by_course[extra[0]]!r} ({extra[0]}) has no place in the model of this config")
    missing = sorted(set(expected) - set(state))
    if missing:
        shown = ", ".join(f"{_gguf_name(n)} ({n})" for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise GGUFFileError(f"{Path(path).name} lacks tensor(s) {shown}")
    for name, w in state.items():
        if tuple(w.shape) != expected[name]:
            raise ShapeError(f"tensor {by_course[name]!r} has shape {tuple(w.shape)}, the model's {name} "
                             f"expects {expected[name]}")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"parameters or buffers left without values: {left[:5]}")
    return model.eval()


# ---- the tokenizer -----------------------------------------------------------------------------------------------

# SmolLM2's pre-tokenizer ("smollm" in the GGUF file): every digit is a chunk of its own, then GPT-2's rule cuts
# the text between the digits. One regular expression does both: a digit alternative first, no ' ?\p{N}+' (no
# chunk holds two digits), and a whitespace run before a digit is kept whole (the digit ends its piece of text,
# as the end of the text does in GPT-2's '\s+(?!\S)').
SMOLLM_PATTERN = r"""\p{N}|'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to printable characters, used to write byte-level tokens as text.

    The printable bytes ``!``..``~``, ``¡``..``¬`` and ``®``..``ÿ`` stand for themselves; the other 68 (space,
    control bytes, ...) get the characters from U+0100 on, in byte order: the space 0x20 becomes ``Ġ`` (U+0120),
    the newline 0x0A becomes ``Ċ`` (U+010A).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


NO_TOKEN = -1   # stands, inside encoding, for a byte the vocabulary has no token for


class GGUFTokenizer(BPETokenizer):
    """A :class:`BPETokenizer` whose vocabulary may lack some single bytes (SmolLM2's has no token for 21 of the
    256, such as 0x04, or the lead bytes 0xF1 and 0xF2 of characters U+40000..U+BFFFF, which no text it was trained
    on contains). Encoding text with such a character raises a ValueError naming it (transformers' tokenizer
    silently drops it)."""

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = super()._encode_chunk(chunk)
        if NO_TOKEN in ids:
            bad = next(ch for ch in chunk if any(self.byte_ids[b] == NO_TOKEN for b in ch.encode("utf-8")))
            raise ValueError(f"the character {bad!r} (U+{ord(bad):04X}) has no token in this vocabulary (no token "
                             f"for its byte(s) {bad.encode('utf-8').hex(' ')}): remove or replace it")
        return ids


def load_tokenizer(path: str | Path | None = None) -> GGUFTokenizer:
    """The course's ``BPETokenizer`` with the vocabulary, merges and special tokens of a GGUF file (default: the
    course's model) and SmolLM2's pre-tokenizer :data:`SMOLLM_PATTERN` (a :class:`GGUFTokenizer`).

    Tokens are stored as GPT-2 byte-level strings (``Ġthe`` is `` the``); each is mapped back to its bytes. A merge
    ``"Ġ t"`` joins two tokens; its rank is the id of the token it makes (the ids follow the merge order, checked).
    Special tokens (``<|im_start|>``, ``<|endoftext|>``, ...) are never split. A character whose bytes have no
    token (see :class:`GGUFTokenizer`) is an error.
    """
    meta = read_metadata(path)
    if meta["tokenizer_model"] != "gpt2":
        raise GGUFFileError(f"the file's tokenizer is {meta['tokenizer_model']!r}; the course reads byte-level BPE "
                            f"('gpt2') tokenizers")
    if meta["tokenizer_pre"] != "smollm":
        raise GGUFFileError(f"the file's pre-tokenizer is {meta['tokenizer_pre']!r}; the course knows 'smollm'")
    char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
    tokens, types = meta["tokens"], meta["token_types"]
    vocab, special = {}, {}
    for i, (t, kind) in enumerate(zip(tokens, types, strict=True)):
        if kind == 3:                                                    # a control (special) token
            special[t] = i
        else:
            try:
                vocab[i] = bytes(char_to_byte[c] for c in t)
            except KeyError as err:
                raise GGUFFileError(f"token {i} {t!r} is not a byte-level token") from err
    ids = {t: i for i, t in enumerate(tokens)}
    merges: dict[tuple[int, int], int] = {}
    for rank, m in enumerate(meta["merges"]):
        a, b = m.split(" ")
        new = ids.get(a + b)
        if new is None or a not in ids or b not in ids:
            raise GGUFFileError(f"merge {rank} {m!r} joins or makes a token that is not in the vocabulary")
        merges[(ids[a], ids[b])] = new
    order = [new for new in merges.values()]
    if any(x >= y for x, y in zip(order, order[1:], strict=False)):
        raise GGUFFileError("the merged tokens' ids do not follow the merge order, which the course's BPE needs")
    single = {v: i for i, v in vocab.items() if len(v) == 1}
    byte_ids = [single.get(bytes([b]), NO_TOKEN) for b in range(256)]
    return GGUFTokenizer(vocab, merges, SMOLLM_PATTERN, special, byte_ids)


# ---- the chat format ---------------------------------------------------------------------------------------------

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chat_prompt(messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
    """A conversation in SmolLM2's chat format (ChatML): each message becomes
    ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; a conversation that does not open with a system message gets
    SmolLM2's default one first; ``add_generation_prompt`` ends with ``<|im_start|>assistant\\n`` for the model to
    continue. messages: [{"role": "system" | "user" | "assistant", "content": str}, ...]."""
    parts = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"message {k} should be a dict with str 'role' and 'content', got {m!r}")
        if k == 0 and m["role"] != "system":
            parts.append(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n")
        parts.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


# ---- the reference: transformers, offline ------------------------------------------------------------------------

def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def reference_model(path: str | Path | None = None, dtype: torch.dtype = torch.float32):
    """transformers' own ``LlamaForCausalLM`` read from the same GGUF file (offline), in eval mode: the
    reference the course's model is tested against."""
    _offline()
    from transformers import AutoModelForCausalLM

    path = model_path() if path is None else Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    return model.eval()


def reference_tokenizer(path: str | Path | None = None):
    """transformers' tokenizer read from the same GGUF file (offline)."""
    _offline()
    from transformers import AutoTokenizer

    path = model_path() if path is None else Path(path)
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def with_digit_split(reference):
    """A copy of ``reference_tokenizer()``'s backend (a ``tokenizers.Tokenizer``) with SmolLM2's own
    pre-tokenizer put back: every digit a chunk of its own, then GPT-2's byte-level splitting. transformers'
    GGUF reader builds only the byte-level part, so it differs from SmolLM2 where whitespace precedes a digit.
    Encode with ``.encode(text).ids``."""
    from tokenizers import Tokenizer
    from tokenizers import pre_tokenizers as pt

    tokenizer = Tokenizer.from_str(reference.backend_tokenizer.to_str())
    tokenizer.pre_tokenizer = pt.Sequence([pt.Digits(individual_digits=True),
                                           pt.ByteLevel(add_prefix_space=False, use_regex=True)])
    return tokenizer
