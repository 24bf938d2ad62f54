"""widgets.chat_box: the reply follows the message, the send button, and both sliders; it is streamed from the
model's key-value cache and stops at a stop token."""

from __future__ import annotations

import ipywidgets as widgets
import torch

from course_utils.model import GPTConfig, MiniGPT
from course_utils.tokenizers import CharTokenizer
from course_utils.widgets import chat_box


def _tiny():
    torch.manual_seed(0)
    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz ?!.")
    model = MiniGPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, d_model=32, n_heads=4, n_layers=2,
                              pos="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2, bias=False))
    return model.eval(), tok


def _parts(w):
    (box, send), (temp, top_p) = w.children[0].children, w.children[1].children
    return box, send, temp, top_p, w.children[2]


def test_every_control_changes_the_reply():
    model, tok = _tiny()
    w = chat_box(model, tok, lambda m: f"q {m} a ", max_new_tokens=8, message="hi")
    box, send, temp, top_p, out = _parts(w)
    assert isinstance(box, widgets.Text) and isinstance(send, widgets.Button) and isinstance(out, widgets.HTML)
    first = out.value
    assert "<b>you:</b> hi" in first and "(end)" in first and first.count("<span") == 8
    temp.value = 1.5
    assert out.value != first and "temperature 1.5" in out.value
    second = out.value
    top_p.value = 0.5
    assert out.value != second and "top-p 0.50" in out.value
    third = out.value
    send.click()
    assert "reply 1" in out.value and out.value != third
    box.value = "why"
    assert "<b>you:</b> why" in out.value and "reply 2" in out.value


def test_same_settings_same_reply_and_stop_ids_end_it():
    model, tok = _tiny()
    a = _parts(chat_box(model, tok, lambda m: m, max_new_tokens=6, message="ab"))[4].value
    b = _parts(chat_box(model, tok, lambda m: m, max_new_tokens=6, message="ab"))[4].value
    assert a == b
    stop_all = list(range(tok.vocab_size))
    c = _parts(chat_box(model, tok, lambda m: m, max_new_tokens=6, message="ab", stop_ids=stop_all))[4].value
    assert "<span" not in c and "(end)" in c
