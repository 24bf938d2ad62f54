"""widgets.layer_explorer on a small random model: every control redraws, and what it prints follows it."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib
import torch

from course_utils import bpe
from course_utils.model import GPTConfig, MiniGPT
from course_utils.widgets import layer_explorer

matplotlib.use("Agg")


def test_layer_explorer_follows_every_control(capsys):
    tok = bpe.BPETokenizer({i: bytes([i]) for i in range(256)}, {})
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig(vocab_size=256, block_size=64, d_model=32, n_heads=4, n_layers=4, pos="rope",
                              norm="rmsnorm", mlp="swiglu", n_kv_heads=2, bias=False)).eval()
    w = layer_explorer(model, tok, "abc", every=2)
    assert isinstance(w, widgets.VBox)
    box, sliders, _out = w.children
    layer, head = sliders.children
    assert (layer.max, head.max) == (3, 3)
    first = capsys.readouterr().out
    assert f"block  {layer.value + 1}:" in first and "<- the chosen layer" in first
    layer.value = 0
    after_layer = capsys.readouterr().out
    assert "block  1:" in after_layer and after_layer != first
    head.value = 2                      # the picture changes; the lens table is redrawn with it
    assert "logit lens" in capsys.readouterr().out
    box.value = "a much longer text"
    assert "logit lens" in capsys.readouterr().out
