"""course_utils.downloads: the one ``pip download`` set-up uses, checked without a network (pip is replaced)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from course_utils import downloads


def _fake_pip(returncode: int, leaves: str | None, stderr: str = ""):
    """A stand-in for subprocess.run that records the command and leaves a file named ``leaves`` in the -d folder."""
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if leaves is not None:
            (Path(cmd[cmd.index("-d") + 1]) / leaves).write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    return run, calls


@pytest.mark.parametrize("kind, option, name", [("sdist", "--no-binary", "pkg-1.0.tar.gz"),
                                                ("wheel", "--only-binary", "pkg-1.0-py3-none-any.whl")])
def test_pip_download_fetches_one_distribution_without_dependencies(tmp_path, monkeypatch, kind, option, name):
    run, calls = _fake_pip(0, name)
    monkeypatch.setattr(downloads.subprocess, "run", run)
    assert downloads.pip_download("pkg==1.0", tmp_path, kind) == tmp_path / name
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "install" not in cmd
    assert cmd[cmd.index(option) + 1] == ":all:" and "pkg==1.0" in cmd and cmd[cmd.index("-d") + 1] == str(tmp_path)


def test_pip_download_names_the_package_and_pips_message_when_it_fails(tmp_path, monkeypatch):
    run, _ = _fake_pip(1, None, "ERROR: network unreachable")
    monkeypatch.setattr(downloads.subprocess, "run", run)
    with pytest.raises(RuntimeError, match=r"could not download pkg==1\.0: ERROR: network unreachable"):
        downloads.pip_download("pkg==1.0", tmp_path)


def test_pip_download_fails_when_pip_leaves_the_wrong_kind_of_file(tmp_path, monkeypatch):
    run, _ = _fake_pip(0, "pkg-1.0.tar.gz")                   # pip "succeeds" but leaves a source distribution
    monkeypatch.setattr(downloads.subprocess, "run", run)
    with pytest.raises(RuntimeError, match=r"pkg==1\.0: pip left no \*\.whl file"):
        downloads.pip_download("pkg==1.0", tmp_path, "wheel")


def test_pip_download_rejects_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="kind should be one of sdist, wheel, got 'egg'"):
        downloads.pip_download("pkg==1.0", tmp_path, "egg")
