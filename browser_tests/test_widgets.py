"""Every widget of every notebook, in a real JupyterLab and a real Chromium (`make browser-test`).

The notebooks are found, not listed: every notebooks/NN_*.ipynb whose stored outputs or code use widgets. Each is
run in quick mode in a fresh kernel, every control on the page is changed BROWSER_TEST_REPEAT times (default 2),
and each change must change the output it drives with every figure whole (see labdriver.py). The notebooks in
browser_tests/must_fail/ are built to break one rule each; the test checks that each of them fails, with the
expected message, so the checks above can fail.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from labdriver import REPO, Lab, NotebookRun, WidgetTestFailure, uses_widgets

NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb") if uses_widgets(p))
MUST_FAIL = {
    "cell_error": "error output",
    "output_never_changes": "did not change",
    "missing_model": "Error displaying widget",
    "broken_figure": "is broken (transparent pixels",
    "console_error": "console error",
}
FEEDBACK: list[str] = []     # the coloured exercise feedback seen, one per notebook that has some
REPEAT = int(os.environ.get("BROWSER_TEST_REPEAT", "2"))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def lab():
    server = Lab().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM:
        pytest.fail("no Chromium found: install it with `apt-get install -y chromium chromium-driver` "
                    "(or set CHROMIUM=/path/to/chromium); `make browser-test` does it when run as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def test_the_course_has_notebooks_with_widgets():
    assert len(NOTEBOOKS) >= 5, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_widget_responds_and_every_figure_is_whole(lab, page, path, record_property):
    t0 = time.monotonic()
    run = NotebookRun(lab, page, str(path.relative_to(REPO)), repeat=REPEAT)
    run.open_and_run()
    run.check_rendered()
    n = run.check_figures("after Run All")
    feedback = run.check_feedback()          # fails if a check cell's feedback is there but not coloured
    if feedback:
        FEEDBACK.append(f"{path.stem}: {feedback}")
    changed = run.exercise_controls()
    run.check_errors()
    print(f"{path.stem}: {len(changed)} changes, {n} figures after Run All, feedback {feedback!r}, "
          f"{time.monotonic() - t0:.0f} s")
    for line in changed:
        print("   ", line)
    record_property("changes", changed)


@pytest.mark.parametrize("name", sorted(MUST_FAIL))
def test_a_broken_notebook_fails(lab, page, name):
    run = NotebookRun(lab, page, f"browser_tests/must_fail/{name}.ipynb", repeat=1)
    with pytest.raises(WidgetTestFailure, match=MUST_FAIL[name].replace("(", r"\(")):
        run.open_and_run(timeout=90)
        run.check_rendered()
        run.check_figures("after Run All")
        run.exercise_controls(wait=8)
        run.check_errors()


def test_an_exercise_check_showed_coloured_feedback():
    """Runs after the notebooks above (pytest keeps file order): at least one exercise check cell rendered its
    coloured feedback (e.g. "Not attempted yet" on an amber bar), as HTML rather than as text."""
    if not NOTEBOOKS:
        pytest.skip("no notebook ran")
    assert FEEDBACK, "no notebook showed an exercise check's coloured feedback"
    print("coloured feedback:", FEEDBACK)
