"""widgets.tokenizer_explorer: a standard ipywidgets control whose HTML follows the text box."""

from __future__ import annotations

import ipywidgets as widgets

from course_utils import bpe
from course_utils.widgets import tokenizer_explorer


def test_explorer_redraws_when_the_text_changes():
    tok = bpe.train_bpe("the cat sat on the mat " * 20, 265)
    w = tokenizer_explorer({"mine": tok, "bytes": bpe.BPETokenizer({i: bytes([i]) for i in range(256)}, {})},
                           "the cat")
    assert isinstance(w, widgets.VBox)
    box, out = w.children
    assert isinstance(box, widgets.Textarea) and isinstance(out, widgets.HTML)
    assert "<b>mine</b>: " + str(len(tok.encode("the cat"))) + " tokens" in out.value
    assert "<b>bytes</b>: 7 tokens" in out.value
    box.value = "a mat!"
    assert "<b>bytes</b>: 6 tokens" in out.value
