"""The controls of notebooks 12, 14 and 15: each output follows its control, with the numbers it claims."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
import torch

from course_utils import ablation, scaling
from course_utils.widgets import ablation_explorer, compute_budget_explorer, lora_rank_explorer


def test_compute_budget_explorer_moves_n_and_d_with_the_budget():
    mine = scaling.LossLaw(E=1.0, A=50.0, B=80.0, alpha=0.3, beta=0.2)
    w = compute_budget_explorer({"yours": mine, "Chinchilla": scaling.CHINCHILLA}, budget=1e12)
    slider, out = w.children
    n, d = scaling.compute_optimal(1e12, mine)
    assert f"<td>yours</td><td>{n:.3g}</td><td>{d:.3g}</td>" in out.value
    assert f"{mine(n, d):.3f}" in out.value and "C<sup>0.40</sup>" in out.value     # beta / (alpha + beta)
    before = out.value
    slider.value = 1e20
    n2, _ = scaling.compute_optimal(1e20, mine)
    assert out.value != before and f"<td>{n2:.3g}</td>" in out.value
    with pytest.raises(TypeError, match="LossLaw"):
        compute_budget_explorer({"yours": (1, 2, 3)})
    with pytest.raises(ValueError, match="at least one"):
        compute_budget_explorer({})


def test_lora_rank_explorer_reports_parameters_and_energy(capsys):
    torch.manual_seed(0)
    low = torch.randn(24, 2) @ torch.randn(2, 16)                  # an update of rank 2
    w = lora_rank_explorer({"w": low, "noise": torch.randn(24, 16)}, rank=2)
    (choose, r), out = w.children[0].children, w.children[1]
    assert isinstance(out, widgets.Output)
    assert isinstance(choose, widgets.Dropdown) and r.max == 16
    text = capsys.readouterr().out       # outside a kernel, the Output widget's prints reach stdout
    assert "trains 80 numbers, 20.8% of the matrix's 384" in text          # 2 x (16 + 24) of 24 x 16
    assert "keeps 100.0% of the update's energy" in text                  # rank 2 holds all of it
    r.value = 1
    text = capsys.readouterr().out
    assert "trains 40 numbers" in text and "keeps 100.0%" not in text
    with pytest.raises(Exception, match="matrix"):
        lora_rank_explorer({"v": torch.randn(5)})


def test_ablation_explorer_shows_single_changes_and_a_measured_set():
    summary = ablation.summarise(ablation.read_csv())
    w = ablation_explorer(summary, checked=("rope",))
    preset, boxes, out = w.children
    by = {r["run"]: r for r in summary}
    assert f"<td>rope</td><td>{by['rope']['bits']:.4f}</td>" in out.value
    assert f"{by['rope']['ratio']:.3f}x the baseline" in out.value and "not measured together" in out.value
    preset.value = "modern"
    ticked = {b.description for b in boxes.children if b.value}
    assert ticked == set(by["modern"]["changes"].split("+"))
    assert "Measured together</b> (run 'modern')" in out.value and f"{by['modern']['ratio']:.3f}x" in out.value
    for b in boxes.children:
        b.value = False
    assert "Tick a change" in out.value
    with pytest.raises(ValueError, match="baseline"):
        ablation_explorer([r for r in summary if r["run"] != "baseline"])
