"""GPT-2's and GPT-4's real tokenizers: offline from the rank files set-up placed, and the course's encode gives
exactly tiktoken's ids on the whole Wikipedia text and on hard strings."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from course_utils import bpe, data, real_tokenizers

HARD = ["The cat sat", "understanding", " understanding", "   spaces  \n\n\n  tabs\t\tand\r\nnewlines  ", "",
        "1234567890 3.14159 2026", "I'm don't we'll they've YOU'RE She'D", "café naïve Zürich façade",
        "emoji 🙂👍🏽 end", "<|endoftext|>Hello<|endoftext|>", "日本語のテキスト", "a" * 200 + " " * 30, "\n",
        "x  ", "<|fim_prefix|>def f(): pass<|fim_suffix|>"]


def _need(name):
    if not real_tokenizers.available(name):
        pytest.fail(f"the {name} rank file is missing: run {real_tokenizers.FETCH_COMMAND}")


def test_cache_file_is_where_tiktoken_looks():
    for name, spec in real_tokenizers.RANK_FILES.items():
        path = real_tokenizers.rank_file_path(name)
        assert path.parent == real_tokenizers.tiktoken_cache_dir()
        assert path.name == hashlib.sha1(spec.url.encode()).hexdigest()
    import tiktoken_ext.openai_public as op  # tiktoken's own constructors name the same URLs and hashes
    src = open(op.__file__).read()
    for spec in real_tokenizers.RANK_FILES.values():
        assert spec.url in src and spec.sha256 in src


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        real_tokenizers.get_encoding("gpt5")


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
def test_course_encode_equals_tiktoken_on_wikipedia_and_hard_strings(name):
    _need(name)
    enc = real_tokenizers.get_encoding(name)
    tok = bpe.BPETokenizer.from_tiktoken(enc)
    assert tok.pattern == (bpe.GPT2_PATTERN if name == "gpt2" else bpe.CL100K_PATTERN)
    for s in HARD:
        assert tok.encode(s) == enc.encode(s, allowed_special="all"), s
        assert tok.decode(tok.encode(s)) == s
    text = data.wiki_text()
    assert tok.encode(text) == enc.encode(text, allowed_special="all")


def test_popular_claims_rows_3_and_4():
    _need("gpt2")
    _need("gpt4")
    gpt2, gpt4 = real_tokenizers.get_encoding("gpt2"), real_tokenizers.get_encoding("gpt4")
    assert gpt2.encode("The cat sat") == [464, 3797, 3332]              # row 3 holds
    for enc in (gpt2, gpt4):                                            # row 4 does not
        assert [enc.decode([i]) for i in enc.encode("understanding")] == ["under", "standing"]
        assert len(enc.encode(" understanding")) == 1


def test_missing_file_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert not real_tokenizers.available("gpt2")
    with pytest.raises(real_tokenizers.RankFilesMissing, match="make setup"):
        real_tokenizers.get_encoding("gpt2")


def test_damaged_file_is_not_available(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    real_tokenizers.rank_file_path("gpt4").write_bytes(b"not the real file")
    assert not real_tokenizers.available("gpt4")
    with pytest.raises(real_tokenizers.RankFilesMissing):
        real_tokenizers.get_encoding("gpt4")


OFFLINE = textwrap.dedent("""
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    socket.socket.connect = no_network
    socket.socket.connect_ex = no_network
    socket.create_connection = no_network
    socket.getaddrinfo = no_network

    from course_utils import real_tokenizers
    print(real_tokenizers.get_encoding("gpt2").encode("The cat sat"))
    print(real_tokenizers.get_encoding("gpt4").encode("The cat sat"))
""")


def test_works_offline_in_a_fresh_process(tmp_path):
    _need("gpt2")
    _need("gpt4")
    (tmp_path / "tiktoken").mkdir()
    for name in ("gpt2", "gpt4"):
        src = real_tokenizers.rank_file_path(name)
        shutil.copy(src, tmp_path / "tiktoken" / src.name)
    env = {"COURSE_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", OFFLINE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[464, 3797, 3332]", "[791, 8415, 7731]"]
    assert sorted(p.name for p in (tmp_path / "tiktoken").iterdir()) == sorted(
        real_tokenizers.rank_file_path(n).name for n in ("gpt2", "gpt4"))      # nothing new was fetched
