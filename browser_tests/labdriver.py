"""Drive the course's notebooks in a real JupyterLab with a real Chromium (Playwright), and check every widget.

Used by ``make browser-test`` (browser_tests/test_widgets.py). What it does for one notebook:

1. a fresh kernel (the notebook's session is deleted through the REST API), Run > Run All Cells, wait until every
   code cell shows an execution count and the kernel is idle;
2. no error output, no "Error displaying widget", no widget left as text (``interactive(children=...``), every cell
   whose stored outputs hold a widget renders a live one;
3. every control found in the page (slider, text box, dropdown, checkbox, button, toggle/radio buttons) is changed
   in turn, and the output of its cell must change (the plot's pixels or the printed text), or, for the special
   cases in ``SPECIAL``, another control's value must move;
4. every matplotlib figure in the page is whole: an inline PNG with any transparent pixel is broken;
5. console errors of the page fail the run.

Failures raise :class:`WidgetTestFailure` with a message naming the notebook, the cell and the control.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# Controls whose job is not to redraw an output. Keyed by notebook stem, then by the control's description.
# "moves": the description of another control whose value must change instead of the cell's output.
SPECIAL: dict[str, dict[str, dict[str, str]]] = {
    # the softmax explorer's "change" dropdown only picks which score the "its score" slider edits
    "03_self_attention": {"change": {"moves": "its score"}},
}
# Text typed into a text box, by notebook and description (default: the old text with one character changed).
TEXT_INPUT: dict[str, dict[str, str]] = {
    "01_markov_bigram": {"token:": "e"},
    "02_word_embeddings": {"words:": "king"},
    "16_a_real_llm": {"message": "Name a planet."},
    "18_assistant": {"question": "What is the capital of Zorvia?"},
}


class WidgetTestFailure(AssertionError):
    """A notebook's widgets did not behave."""


def uses_widgets(path: Path) -> bool:
    """True when a notebook's stored outputs show a widget, or its code uses ipywidgets or course_utils.widgets."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if WIDGET_MIME in json.dumps(cell.get("outputs", [])):
            return True
        src = "".join(cell.get("source", []))
        if re.search(r"\bipywidgets\b|course_utils\.widgets|explorer_widget|\binteract\(", src):
            return True
    return False


def widget_cells(path: Path) -> list[int]:
    """Indexes (among all cells) of the code cells whose stored outputs hold a widget view."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [i for i, c in enumerate(nb.get("cells", []))
            if c.get("cell_type") == "code" and WIDGET_MIME in json.dumps(c.get("outputs", []))]


def png_is_whole(data: bytes) -> bool:
    """A matplotlib inline PNG is drawn on an opaque background: any transparent pixel means a broken figure."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        return alpha.getextrema()[0] == 255
    return True


# ---- the server ---------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A JupyterLab server from the course's environment, on 127.0.0.1 with a token, root at the repository."""

    root: Path = REPO
    port: int = field(default_factory=_free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen | None = None
    tmp: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> Lab:
        self.tmp = Path(tempfile.mkdtemp(prefix="browser-test-"))
        settings = self.tmp / "settings"
        # the test's own user settings: no autosave (the stored notebooks stay as they are), no news pop-up, every
        # cell in the DOM (no windowing), so prompts and outputs can be read anywhere in the notebook
        for rel, value in {
            "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False},
            "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        }.items():
            f = settings / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        env = {**os.environ, "COURSE_QUICK": "1", "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.tmp / "workspaces"), "MPLBACKEND": ""}
        env.pop("MPLBACKEND")
        jupyter = Path(sys.executable).parent / "jupyter"
        cmd = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
               f"--port={self.port}", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.news_url=", "--ServerApp.open_browser=False",
               "--LabApp.expose_app_in_browser=True"]    # window.jupyterapp: run commands without menus
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(self.tmp / "server.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("JupyterLab did not start:\n" + (self.tmp / "server.log").read_text()[-3000:])
            try:
                self.api("GET", "/api/status")
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("JupyterLab did not answer in time:\n" + (self.tmp / "server.log").read_text()[-3000:])

    def api(self, method: str, path: str):
        req = urllib.request.Request(self.base + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def fresh_kernel(self, rel: str) -> None:
        """Delete the sessions of notebook ``rel`` (its kernel with it): the next open starts a new kernel."""
        for s in self.api("GET", "/api/sessions"):
            if s.get("path") == rel or s.get("notebook", {}).get("path") == rel:
                self.api("DELETE", f"/api/sessions/{s['id']}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.tmp is not None:
            self.log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- the page -----------------------------------------------------------------------------------------------------

# JavaScript helpers evaluated in the page. A "control" is identified by its index among CONTROLS.
CONTROLS = (".jp-Notebook .widget-slider, .jp-Notebook .widget-text, .jp-Notebook .widget-textarea, "
            ".jp-Notebook .widget-dropdown, .jp-Notebook .widget-checkbox, .jp-Notebook button.widget-button, "
            ".jp-Notebook .widget-toggle-buttons, .jp-Notebook .widget-radio-box, .jp-Notebook .widget-toggle-button")

JS_DESCRIBE = """(sel) => Array.from(document.querySelectorAll(sel)).map((el, i) => {
  const cells = Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'));
  const cell = el.closest('.jp-Cell');
  const label = el.querySelector('.widget-label');
  let kind = 'other';
  for (const k of ['widget-slider', 'widget-textarea', 'widget-text', 'widget-dropdown', 'widget-checkbox',
                   'widget-toggle-buttons', 'widget-radio-box', 'widget-toggle-button', 'widget-button']) {
    if (el.classList.contains(k)) { kind = k.replace('widget-', ''); break; }
  }
  const desc = label ? label.textContent.trim() : (el.textContent || '').trim();
  const disabled = !!el.querySelector('[disabled]') || el.disabled === true;
  return {i, kind, desc, cell: cells.indexOf(cell), disabled};
})"""

JS_CELL_STATE = """(idx) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[idx];
  if (!cell) return null;
  const imgs = Array.from(cell.querySelectorAll('.jp-OutputArea img')).map(i => i.src);
  const clone = cell.querySelector('.jp-Cell-outputArea') ? cell.querySelector('.jp-Cell-outputArea').cloneNode(true)
                                                         : null;
  let text = '';
  if (clone) {
    clone.querySelectorAll('.widget-readout, input, select, .widget-label, .jupyter-button').forEach(e => e.remove());
    text = clone.textContent;
  }
  return {imgs, text};
}"""

JS_VALUE = """([sel, i]) => {
  const el = document.querySelectorAll(sel)[i];
  const r = el.querySelector('.widget-readout');
  if (r) return r.textContent.trim();
  const inp = el.querySelector('input, textarea, select');
  if (inp) return inp.type === 'checkbox' ? String(inp.checked) : inp.value;
  return el.textContent;
}"""

JS_PROMPTS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'))
  .map(p => p.textContent.trim())"""

JS_KERNEL_STATUS = """() => {
  const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const t = document.querySelector('#jp-main-statusbar');
  return [s ? (s.getAttribute('data-status') || '') : '', t ? t.textContent : ''];
}"""


class NotebookRun:
    """One notebook opened in the page, run, and its widgets exercised."""

    def __init__(self, lab: Lab, page, rel: str, repeat: int = 1, log=print):
        self.lab, self.page, self.rel, self.repeat, self.log = lab, page, rel, repeat, log
        self.stem = Path(rel).stem
        self.console_errors: list[str] = []
        self.changed: list[str] = []          # what was changed, for the report
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self.console_errors.append(f"page error: {err}"))

    def _on_console(self, msg) -> None:
        if msg.type == "error":
            self.console_errors.append(msg.text)

    def fail(self, what: str) -> None:
        raise WidgetTestFailure(f"{self.rel}: {what}")

    # -- running ----------------------------------------------------------------------------------------------------

    def open_and_run(self, timeout: float = 240) -> None:
        self.lab.fresh_kernel(self.rel)
        self.page.goto(f"{self.lab.base}/lab/tree/{self.rel}?reset&token={self.lab.token}")
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        self.wait_idle(timeout=60)
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                                    ".isEnabled('notebook:run-all-cells')", timeout=60_000)
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.monotonic() + timeout
        while True:
            prompts = self.page.evaluate(JS_PROMPTS)
            if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts) and self._idle_for(2.0):
                break
            if time.monotonic() > deadline:
                self.fail(f"did not finish running in {timeout:.0f} s (prompts: {prompts})")
            self.check_errors()
            time.sleep(0.5)
        self.check_errors()

    def _status(self) -> str:
        """'idle' once the kernel is connected and idle (the status bar reads "... | Idle"), else 'busy'."""
        ind, bar = self.page.evaluate(JS_KERNEL_STATUS)
        return "idle" if re.search(r"\| Idle", bar) and ind in ("", "idle") else "busy"

    def _idle_for(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._status() != "idle":
                return False
            time.sleep(0.25)
        return True

    def wait_idle(self, timeout: float = 60, settle: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._idle_for(settle):
            if time.monotonic() > deadline:
                self.fail(f"the kernel stayed busy for {timeout:.0f} s")
            time.sleep(0.25)

    # -- checks -----------------------------------------------------------------------------------------------------

    def check_errors(self) -> None:
        errors = self.page.evaluate("""() => Array.from(document.querySelectorAll(
            '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
            .map(e => e.textContent).filter(t => /Traceback/.test(t))""")
        if errors:
            self.fail("error output: " + errors[0][-800:])
        text = self.page.evaluate("() => Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea'))"
                                  ".map(o => o.textContent).join('\\n')")
        if "Error displaying widget" in text:
            self.fail("a widget shows 'Error displaying widget'")
        if self.console_errors:
            self.fail("console error: " + self.console_errors[0][:500])

    def check_rendered(self) -> None:
        """Every cell whose stored outputs hold a widget now shows a live widget, not its text form."""
        text = self.page.evaluate("() => Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea'))"
                                  ".map(o => o.textContent).join('\\n')")          # outputs only, not the prose
        if "interactive(children=" in text or re.search(r"\b(VBox|HBox)\(children=", text):
            self.fail("a widget is shown as text (interactive(children=...)): the widget front end is missing")
        path = self.lab.root / self.rel
        for idx in widget_cells(path):
            n = self.page.evaluate("(i) => { const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];"
                                   " return c ? c.querySelectorAll('.jp-OutputArea .jupyter-widgets').length : -1 }",
                                   idx)
            if n <= 0:
                self.fail(f"cell {idx}: its stored output holds a widget, the live notebook shows none")

    def check_figures(self, context: str) -> int:
        """Every inline PNG in the notebook is whole; returns how many were checked."""
        srcs = self.page.evaluate("""async () => {
            const imgs = Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea img'));
            await Promise.all(imgs.map(i => i.decode().catch(() => null)));
            return imgs.map(i => i.src);
        }""")
        for k, src in enumerate(srcs):
            if not src.startswith("data:image/png;base64,"):
                continue
            if not png_is_whole(base64.b64decode(src.split(",", 1)[1])):
                self.fail(f"{context}: figure {k + 1} is broken (transparent pixels in the PNG)")
        return len(srcs)

    def check_feedback(self) -> str | None:
        """An exercise check cell's coloured feedback renders as HTML (not as raw text); returns its headline."""
        found = self.page.evaluate("""() => {
            const b = Array.from(document.querySelectorAll('.jp-Notebook .jp-RenderedHTMLCommon b'))
                .find(e => /— (Not attempted yet|Correct|Incorrect)/.test(e.textContent));
            if (!b) return null;
            return [b.textContent, getComputedStyle(b).color,
                    getComputedStyle(b.parentElement).borderLeftStyle];
        }""")
        if found is None:
            return None
        headline, colour, border = found
        if colour in ("rgb(0, 0, 0)", "") or border != "solid":
            self.fail(f"exercise feedback {headline!r} is not coloured (colour {colour}, border {border})")
        if "<b style" in self.page.evaluate("() => document.querySelector('.jp-Notebook').textContent"):
            self.fail("exercise feedback is shown as raw HTML text")
        return headline

    # -- controls ---------------------------------------------------------------------------------------------------

    def controls(self) -> list[dict]:
        return self.page.evaluate(JS_DESCRIBE, CONTROLS)

    def _value(self, i: int) -> str:
        return self.page.evaluate(JS_VALUE, [CONTROLS, i])

    def _change(self, c: dict, round_: int) -> str:
        """Change control ``c``; returns what was done, in words."""
        loc = self.page.locator(CONTROLS).nth(c["i"])
        loc.scroll_into_view_if_needed()
        kind = c["kind"]
        if kind == "slider":
            handle = loc.locator(".noUi-handle").first
            before = self._value(c["i"])
            handle.focus()
            key = "ArrowRight" if round_ % 2 == 0 else "ArrowLeft"
            for _ in range(3):
                self.page.keyboard.press(key)
                time.sleep(0.15)
            if self._value(c["i"]) == before:                 # at the end of its range: go the other way
                key = "ArrowLeft" if key == "ArrowRight" else "ArrowRight"
                for _ in range(3):
                    self.page.keyboard.press(key)
            return f"slider '{c['desc']}' {before} -> {self._value(c['i'])} (3 x {key})"
        if kind in ("text", "textarea"):
            box = loc.locator("input, textarea").first
            old = box.input_value()
            new = TEXT_INPUT.get(self.stem, {}).get(c["desc"])
            if new is None or round_ % 2 == 1:
                new = old[:-1] + ("e" if not old.endswith("e") else "a") if old else "the"
            if new == old:
                new = old + "e"
            box.click()
            box.press("Control+a")
            box.press("Backspace")
            box.type(new, delay=60)                           # key by key, as a learner types
            box.press("Enter")
            return f"text box '{c['desc']}' {old!r} -> {new!r} (typed)"
        if kind == "dropdown":
            sel = loc.locator("select").first
            options = sel.locator("option").all_text_contents()
            old = sel.input_value()
            values = sel.evaluate("s => Array.from(s.options).map(o => o.value)")
            others = [v for v in values if v != old]
            if not others:
                self.fail(f"dropdown '{c['desc']}' has a single option")
            new = others[round_ % len(others)]
            sel.select_option(new)
            label = options[values.index(new)]
            return f"dropdown '{c['desc']}' -> {label!r}"
        if kind == "checkbox":
            box = loc.locator("input[type=checkbox]").first
            old = box.is_checked()
            box.click()
            return f"checkbox '{c['desc']}' {old} -> {not old}"
        if kind in ("toggle-buttons",):
            buttons = loc.locator("button")
            n = buttons.count()
            for k in range(n):
                if "mod-active" not in (buttons.nth(k).get_attribute("class") or ""):
                    buttons.nth(k).click()
                    return f"toggle buttons '{c['desc']}' -> {buttons.nth(k).text_content()!r}"
            self.fail(f"toggle buttons '{c['desc']}': no other choice")
        if kind == "radio-box":
            radios = loc.locator("input[type=radio]")
            for k in range(radios.count()):
                if not radios.nth(k).is_checked():
                    radios.nth(k).click()
                    return f"radio buttons '{c['desc']}' -> option {k + 1}"
            self.fail(f"radio buttons '{c['desc']}': no other choice")
        if kind in ("button", "toggle-button"):
            loc.click()
            return f"button '{c['desc']}' clicked"
        self.fail(f"unknown control kind {kind}")
        return ""

    def exercise_controls(self, wait: float = 60) -> list[str]:
        """Change every control ``repeat`` times; after each change the driven output must change and every
        figure must be whole. Returns the changes made."""
        special = SPECIAL.get(self.stem, {})
        for round_ in range(self.repeat):
            for c in self.controls():
                if c["disabled"]:
                    continue
                rule = special.get(c["desc"], {})
                watched = None
                if "moves" in rule:
                    others = [o for o in self.controls() if o["desc"] == rule["moves"] and o["cell"] == c["cell"]]
                    if not others:
                        self.fail(f"control '{c['desc']}': the control '{rule['moves']}' it edits is missing")
                    watched = others[0]["i"]
                    before = self._value(watched)
                else:
                    before = self.page.evaluate(JS_CELL_STATE, c["cell"])
                what = self._change(c, round_)
                deadline = time.monotonic() + wait
                while True:
                    now = self._value(watched) if watched is not None else self.page.evaluate(JS_CELL_STATE,
                                                                                              c["cell"])
                    if now != before and self._idle_for(1.0):
                        break
                    if time.monotonic() > deadline:
                        target = f"the control '{rule['moves']}'" if watched is not None else "its output"
                        self.fail(f"cell {c['cell']}: {what}, but {target} did not change in {wait:.0f} s")
                    self.check_errors()
                    time.sleep(0.3)
                if watched is not None:
                    what += f"; '{rule['moves']}' moved {before} -> {now}"
                self.wait_idle()
                n = self.check_figures(what)
                self.check_errors()
                self.changed.append(f"cell {c['cell']}: {what} [{n} figures whole]")
                self.log(f"  {self.stem} cell {c['cell']}: {what} [{n} figures whole]")
        return self.changed
