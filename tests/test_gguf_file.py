"""The GGUF file: set-up's checks, metadata, the tensor table, and dequantization by hand (bit-exact)."""

import json
import os
import struct

import numpy as np
import pytest

from course_utils import downloads, gguf_file

needs_file = pytest.mark.skipif(not gguf_file.available(),
                                reason=f"the SmolLM2 GGUF file is absent: run {gguf_file.FETCH_COMMAND}")


@pytest.fixture(scope="module")
def reader():
    from gguf import GGUFReader

    return GGUFReader(gguf_file.model_path())


# ---- dequantization on hand-made blocks (no file needed) ---------------------------------------------------------

def _f16(x: float) -> bytes:
    return np.float16(x).tobytes()


def test_q4_1_nibble_order_and_formula():
    q = np.arange(32) // 2                                    # q_0..q_31: 0,0,1,1,...,15,15
    packed = bytes(int(q[j]) | int(q[j + 16]) << 4 for j in range(16))
    block = np.frombuffer(_f16(0.5) + _f16(-2.0) + packed, dtype=np.uint8).reshape(1, 20)
    w = gguf_file.dequantize(block, "Q4_1", (32,))
    np.testing.assert_array_equal(w, 0.5 * q.astype(np.float32) - 2.0)
    swapped = bytes(int(q[j + 16]) | int(q[j]) << 4 for j in range(16))   # the wrong nibble order differs
    block2 = np.frombuffer(_f16(0.5) + _f16(-2.0) + swapped, dtype=np.uint8).reshape(1, 20)
    assert not np.array_equal(gguf_file.dequantize(block2, "Q4_1", (32,)), w)


def test_q8_0_signed_bytes_and_scale():
    q = np.arange(-16, 16, dtype=np.int8)
    block = np.frombuffer(_f16(0.25) + q.tobytes(), dtype=np.uint8).reshape(1, 34)
    np.testing.assert_array_equal(gguf_file.dequantize(block, "Q8_0", (32,)), 0.25 * q.astype(np.float32))


def test_bits_per_weight():
    assert gguf_file.bits_per_weight("Q4_1") == 5.0
    assert gguf_file.bits_per_weight("Q8_0") == 8.5
    assert gguf_file.bits_per_weight("F16") == 16.0
    with pytest.raises(gguf_file.GGUFFileError, match="Q2_K"):
        gguf_file.bits_per_weight("Q2_K")


def test_unsupported_type_names_type_and_tensor():
    with pytest.raises(gguf_file.GGUFFileError, match=r"blk\.7\.ffn_up\.weight.*Q5_K"):
        gguf_file.dequantize(np.zeros(176, np.uint8), "Q5_K", (256,), "blk.7.ffn_up.weight")


def test_wrong_number_of_bytes_is_named():
    with pytest.raises(gguf_file.GGUFFileError, match=r"'w'.*should have 40 bytes, found 39"):
        gguf_file.dequantize(np.zeros(39, np.uint8), "Q4_1", (64,), "w")
    with pytest.raises(gguf_file.GGUFFileError, match="whole number"):
        gguf_file.dequantize(np.zeros(20, np.uint8), "Q4_1", (30,), "w")


# ---- checking the file -------------------------------------------------------------------------------------------

def test_missing_file_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    with pytest.raises(gguf_file.GGUFMissing, match="make setup") as err:
        gguf_file.model_path()
    assert isinstance(err.value, FileNotFoundError)
    assert "course_utils.gguf_file fetch" in str(err.value)
    assert not gguf_file.available()


def test_wrong_size_and_wrong_hash_are_named(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"x" * 100)
    with pytest.raises(gguf_file.GGUFFileError, match=r"model\.gguf has 100 bytes, expected 101"):
        gguf_file.verify(path, size=100 + 1, sha256="0" * 64)
    with pytest.raises(gguf_file.GGUFFileError, match=r"model\.gguf has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        gguf_file.verify(path, size=100, sha256="0" * 64)


def test_verification_is_remembered_and_redone_when_the_file_changes(tmp_path):
    import hashlib

    path = tmp_path / "model.gguf"
    path.write_bytes(b"abc" * 10)
    digest = hashlib.sha256(b"abc" * 10).hexdigest()
    assert gguf_file.verify(path, size=30, sha256=digest) == path
    assert json.loads((tmp_path / "model.gguf.verified").read_text())["sha256"] == digest
    path.write_bytes(b"abd" * 10)                                  # same size, new content, new mtime
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(gguf_file.GGUFFileError, match="SHA-256"):
        gguf_file.verify(path, size=30, sha256=digest)


@needs_file
def test_truncated_copy_of_the_model_is_refused(tmp_path):
    src = gguf_file.model_path()
    path = tmp_path / gguf_file.FILE_NAME
    with open(src, "rb") as f:
        path.write_bytes(f.read(1_000_000))
    with pytest.raises(gguf_file.GGUFFileError, match=rf"{gguf_file.FILE_NAME} has 1,000,000 bytes, expected "
                                                      rf"98,362,432"):
        gguf_file.verify(path)
    with pytest.raises(gguf_file.GGUFFileError, match="not a readable GGUF"):
        gguf_file.list_tensors(path)


@needs_file
def test_fetch_is_a_no_op_when_the_file_is_verified(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("fetch should not download a file that is already there")

    monkeypatch.setattr(downloads.subprocess, "run", no_download)
    assert gguf_file.fetch(log=lambda *_: None) is False


# ---- the course's model file -------------------------------------------------------------------------------------

@needs_file
def test_metadata_of_smollm2():
    meta = gguf_file.read_metadata()
    expected = {"architecture": "llama", "n_layers": 30, "context_length": 8192, "d_model": 576, "ffn_hidden": 1536,
                "n_heads": 9, "n_kv_heads": 3, "head_dim": 64, "rope_base": 100000.0, "norm_eps": 1e-5,
                "vocab_size": 49152, "tokenizer_model": "gpt2", "tokenizer_pre": "smollm", "bos_token_id": 1,
                "eos_token_id": 2}
    assert {k: meta[k] for k in expected} == expected
    assert len(meta["tokens"]) == len(meta["token_types"]) == 49152
    assert len(meta["merges"]) == 48900 and meta["merges"][0].count(" ") == 1
    assert meta["chat_template"].startswith("{% for message in messages %}")


@needs_file
def test_tensor_table(reader):
    infos = gguf_file.list_tensors()
    assert len(infos) == 272
    assert sum(t.n_params for t in infos) == 134_515_008
    by_name = {t.name: t for t in infos}
    assert by_name["token_embd.weight"].shape == (49152, 576) and by_name["token_embd.weight"].type_name == "Q8_0"
    assert by_name["blk.0.ffn_down.weight"].shape == (576, 1536)      # PyTorch's (out, in)
    assert by_name["blk.0.attn_k.weight"].shape == (192, 576)
    for t in infos:
        if t.type_name in ("Q4_1", "Q8_0"):
            assert t.bits_per_weight == gguf_file.bits_per_weight(t.type_name)
    assert {t.type_name for t in infos} == {"Q4_1", "Q8_0", "F32"}
    assert "output.weight" not in by_name                               # tied output


@needs_file
def test_dequantization_is_bit_exact_on_every_tensor(reader):
    from gguf.quants import dequantize as reference

    mine = gguf_file.load_tensors()
    assert set(mine) == {t.name for t in reader.tensors}
    for t in reader.tensors:
        ref = reference(t.data, t.tensor_type).reshape(tuple(mine[t.name].shape))
        assert mine[t.name].dtype == __import__("torch").float32
        assert np.array_equal(mine[t.name].numpy(), ref), t.name


def test_f16_block_scale_is_read_little_endian():
    # the fp16 scale is the first two bytes, little-endian, as in the file
    raw = struct.pack("<e", 3.0) + bytes([2] * 32)
    w = gguf_file.dequantize(np.frombuffer(raw, np.uint8), "Q8_0", (32,))
    np.testing.assert_array_equal(w, np.full(32, 6.0, np.float32))
