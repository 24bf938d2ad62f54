"""widgets.assistant_compare: one column per version of the model, each control changes what is shown, the
columns differ when the adapters differ, and the model's own adapters are put back."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
import torch
from test_chat_sft_dpo import byte_tok, tiny_llama

from course_utils import lora
from course_utils.widgets import assistant_compare


def _setup():
    tok, model = byte_tok(), tiny_llama()
    lora.add_lora(model, r=2)
    off = lora.adapter_state(model)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.B.normal_(std=2.0)
    moved = lora.adapter_state(model)
    lora.load_adapter_state(model, off)
    return tok, model, off, moved


def _controls(w):
    found = {}
    for box in w.children[:-1]:
        for c in (box.children if isinstance(box, widgets.HBox) else [box]):
            found[c.description] = c
    return found, w.children[-1]


def test_every_control_changes_the_table_and_columns_differ():
    tok, model, off, moved = _setup()
    w = assistant_compare(model, tok, {"base": None, "tuned": moved}, ["Hi?", "Why?"],
                          systems={"default": None, "short": "Be brief."}, max_new_tokens=6)
    c, out = _controls(w)
    assert set(c) == {"example", "question", "system", "max tokens"}
    first = out.value
    assert first.count("<td") == 2 and "<b>base</b>" in first and "<b>tuned</b>" in first
    cols = first.split("<td")[1:]
    assert cols[0].split("<br>", 1)[1] != cols[1].split("<br>", 1)[1]       # different adapters, different replies
    for name, value in (("example", "Why?"), ("question", "Who?"), ("system", "short"), ("max tokens", 12)):
        before = out.value
        c[name].value = value
        assert out.value != before, name
    assert "Be brief." in out.value and "at most 12 tokens" in out.value and "Who?" in out.value
    for k, v in lora.adapter_state(model).items():       # the model's own (zero) adapters are back
        assert torch.equal(v, off[k])


def test_bad_arguments_are_refused():
    tok, model, _, _ = _setup()
    with pytest.raises(ValueError, match="at least one column"):
        assistant_compare(model, tok, {}, ["Hi?"])
    with pytest.raises(ValueError, match="at least one example question"):
        assistant_compare(model, tok, {"base": None}, [])
