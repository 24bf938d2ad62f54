"""course_utils.scaling: sizes and FLOPs match the model, the grid obeys its rules, every fit recovers known
parameters from synthetic data, a tiny sweep writes and reuses its CSV, bad input gets a clear error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from course_utils import scaling
from course_utils.data import small_corpus
from course_utils.model import MiniGPT, gpt_param_count
from course_utils.scaling import (
    CHINCHILLA,
    SHAPES,
    LossLaw,
    Run,
    Shape,
    SweepSettings,
    bootstrap_loss_law,
    compute_optimal,
    estimate_seconds,
    fit_loss_law,
    fit_power_law,
    grid_for_minutes,
    isoflop_minima,
    kaplan_loss,
    kaplan_loss_D,
    kaplan_loss_N,
    learning_rate,
    mixed_claim_loss,
    non_embedding_params,
    plan_runs,
    prediction_run,
    read_runs,
    sweep,
    train_run,
    training_flops,
)
from course_utils.tokenizers import CharTokenizer

TRUE = LossLaw(E=0.9, A=40.0, B=300.0, alpha=0.45, beta=0.35)


def _synthetic(law=TRUE, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e4, 2e6, 6), 5)
    D = np.tile(np.geomspace(1e5, 3e7, 5), 6)
    L = law(N, D) * np.exp(noise * rng.standard_normal(len(N)))
    return N, D, L


# ---- published laws ------------------------------------------------------------------------------------------

def test_chinchilla_law_for_gpt3_and_70b():
    assert CHINCHILLA(175e9, 300e9) == pytest.approx(2.0, abs=0.01)
    assert CHINCHILLA(70e9, 1.4e12) == pytest.approx(1.94, abs=0.01)
    assert CHINCHILLA(70e9, 1.4e12) < CHINCHILLA(175e9, 300e9)   # less compute, lower loss
    assert CHINCHILLA(np.array([1e9, 1e10]), np.array([1e10, 1e11])).shape == (2,)


def test_kaplan_laws():
    assert kaplan_loss_N(8.8e13) == pytest.approx(1.0)
    assert kaplan_loss_D(5.4e13) == pytest.approx(1.0)
    # the joint law tends to each one-variable law when the other resource is unlimited
    assert kaplan_loss(1e9, 1e30) == pytest.approx(kaplan_loss_N(1e9), rel=1e-6)
    assert kaplan_loss(1e40, 1e9) == pytest.approx(kaplan_loss_D(1e9), rel=1e-6)
    assert mixed_claim_loss(175e9, 300e9) == pytest.approx(kaplan_loss_N(175e9) + kaplan_loss_D(300e9))
    assert mixed_claim_loss(175e9, 300e9) > 1.5 * kaplan_loss(175e9, 300e9)


def test_loss_law_rejects_bad_parameters_and_inputs():
    with pytest.raises(ValueError, match="A, B, alpha, beta > 0"):
        LossLaw(E=1.0, A=-1.0, B=1.0, alpha=0.3, beta=0.3)
    with pytest.raises(ValueError, match="finite"):
        LossLaw(E=float("nan"), A=1.0, B=1.0, alpha=0.3, beta=0.3)
    with pytest.raises(ValueError, match="N should hold positive"):
        CHINCHILLA(0, 1e9)
    with pytest.raises(ValueError, match="D should hold positive"):
        kaplan_loss(1e9, -5)


# ---- sizes and FLOPs -------------------------------------------------------------------------------------------

def test_training_flops():
    assert training_flops(175e9, 300e9) == pytest.approx(3.15e23)
    with pytest.raises(ValueError):
        training_flops(1e9, 0)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"d{s.d_model}L{s.n_layers}")
def test_shape_N_is_the_models_non_embedding_count(shape):
    cfg = shape.config(vocab_size=94, block_size=64)
    model = MiniGPT(cfg)
    assert non_embedding_params(model) == shape.N
    assert shape.N == gpt_param_count(94, 64, shape.d_model, shape.n_layers) - (94 + 64) * shape.d_model


def test_shapes_span_2k_to_2m():
    Ns = [s.N for s in SHAPES]
    assert Ns == sorted(Ns) and 1e3 < Ns[0] < 2e3 and 1.5e6 < Ns[-1] < 2.1e6


def test_bad_shapes_and_models():
    with pytest.raises(ValueError, match="does not divide"):
        Shape(30, 2, 4)
    with pytest.raises(ValueError, match=">= 1"):
        Shape(16, 0, 2)
    with pytest.raises(TypeError, match="MiniGPT"):
        non_embedding_params(torch.nn.Linear(2, 2))


def test_learning_rate_shrinks_with_width():
    assert learning_rate(64) == pytest.approx(6e-3)
    assert learning_rate(16) == pytest.approx(1.2e-2)
    assert learning_rate(256) < learning_rate(128) < learning_rate(64)
    with pytest.raises(ValueError):
        learning_rate(0)


# ---- the grid --------------------------------------------------------------------------------------------------

def test_plan_runs_follows_its_rules():
    s = SweepSettings()
    runs = plan_runs([3e10, 1e11, 1e12], settings=s)
    assert runs and [r.budget for r in runs] == sorted(r.budget for r in runs)
    for r in runs:
        assert r.steps >= s.min_steps and r.tokens == r.steps * s.tokens_per_step
        assert r.flops == pytest.approx(r.budget, rel=0.02)      # whole steps: within 2% of the budget
        n_star = math.sqrt(r.budget / (6 * s.tokens_per_param))
        assert n_star / s.window <= r.N <= n_star * s.window
    assert {r.budget for r in runs} == {3e10, 1e11, 1e12}


def test_plan_runs_bad_input():
    with pytest.raises(ValueError, match="at least one compute budget"):
        plan_runs([])
    with pytest.raises(ValueError, match="positive"):
        plan_runs([-1e10])
    with pytest.raises(ValueError, match="shape"):
        plan_runs([1e10], shapes=[])


def test_grid_for_minutes_grows_with_time_and_respects_the_estimate():
    small, large = grid_for_minutes(2), grid_for_minutes(60)
    assert set(small) <= set(large) and len(large) > len(small)
    assert estimate_seconds(grid_for_minutes(30)) <= 30 * 60
    assert estimate_seconds(small, overhead_s=0.0, flops_per_s=1e20) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="positive"):
        grid_for_minutes(0)
    with pytest.raises(ValueError):
        estimate_seconds(small, flops_per_s=0)


# ---- fits ------------------------------------------------------------------------------------------------------

def test_fit_power_law_recovers_known_parameters():
    x = np.geomspace(1e10, 1e14, 7)
    k, a = fit_power_law(x, 3e-2 * x ** 0.55)
    assert k == pytest.approx(3e-2, rel=1e-8) and a == pytest.approx(0.55, abs=1e-10)


def test_fit_power_law_bad_input():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3], [1, 0, 2])
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="two different x"):
        fit_power_law([5, 5], [1, 2])


def test_isoflop_minima_find_the_vertex():
    rows = []
    for C, n_opt in [(1e10, 2e4), (1e11, 6e4), (1e12, 2e5)]:
        for N in n_opt * np.geomspace(0.1, 10, 5):
            rows.append({"budget": C, "N": N, "D": C / (6 * N), "val_loss": 2.0 + 0.1 * np.log(N / n_opt) ** 2})
    rows.append({"budget": 1e13, "N": 1e5, "D": 1e7, "val_loss": 1.5})     # one run only: skipped
    m = isoflop_minima(pd.DataFrame(rows))
    assert list(m["budget"]) == [1e10, 1e11, 1e12] and m["interior"].all()
    assert np.allclose(m["N_opt"], [2e4, 6e4, 2e5], rtol=1e-6)
    assert np.allclose(m["D_opt"] * 6 * m["N_opt"], m["budget"])
    assert np.allclose(m["L_min"], 2.0)


def test_isoflop_minimum_at_the_edge_is_flagged():
    rows = [{"budget": 1e10, "N": N, "D": 1e10 / (6 * N), "val_loss": 2 + 0.1 * math.log(N)} for N in (1e3, 1e4, 1e5)]
    m = isoflop_minima(rows)
    assert not m["interior"].iloc[0] and m["N_opt"].iloc[0] == pytest.approx(1e3)


def test_isoflop_minima_bad_input():
    with pytest.raises(ValueError, match="3 or more runs"):
        isoflop_minima([{"budget": 1, "N": 1, "D": 1, "val_loss": 1}])
    with pytest.raises(ValueError, match="column 'val_loss'"):
        isoflop_minima([{"N": 1, "D": 1}])


def test_fit_loss_law_recovers_known_parameters():
    law = fit_loss_law(*_synthetic())
    assert law.alpha == pytest.approx(TRUE.alpha, abs=0.01)
    assert law.beta == pytest.approx(TRUE.beta, abs=0.01)
    assert law.E == pytest.approx(TRUE.E, rel=0.02)
    N, D, _ = _synthetic()
    assert np.allclose(law(N, D), TRUE(N, D), rtol=1e-3)


def test_fit_loss_law_bad_input():
    N, D, L = _synthetic()
    with pytest.raises(ValueError, match="at least 5 runs"):
        fit_loss_law(N[:4], D[:4], L[:4])
    with pytest.raises(ValueError, match="same length"):
        fit_loss_law(N, D[:-1], L)
    with pytest.raises(ValueError, match="two different N"):
        fit_loss_law(np.full(6, 1e5), D[:6], L[:6])
    with pytest.raises(ValueError, match="L should hold positive"):
        fit_loss_law(N, D, -L)
    with pytest.raises(ValueError, match="n_best"):
        fit_loss_law(N, D, L, n_best=0)


def test_compute_optimal_minimises_the_law_on_the_budget():
    C = 1e21
    n, d = compute_optimal(C, CHINCHILLA)
    assert 6 * n * d == pytest.approx(C)
    grid = n * np.geomspace(0.5, 2, 401)
    losses = CHINCHILLA(grid, C / (6 * grid))
    assert grid[np.argmin(losses)] == pytest.approx(n, rel=0.01)
    ns, ds = compute_optimal(np.array([1e20, 1e22]), CHINCHILLA)
    assert ns.shape == (2,) and ns[1] > ns[0]
    with pytest.raises(TypeError, match="LossLaw"):
        compute_optimal(C, (1.69, 406.4, 410.7, 0.34, 0.28))


def test_bootstrap_covers_the_true_exponents():
    N, D, L = _synthetic(noise=0.01, seed=1)
    boot = bootstrap_loss_law(N, D, L, n_boot=8, seed=0)
    assert set(boot) == {"E", "A", "B", "alpha", "beta", "a", "tokens_per_param"}
    assert all(len(v) == 8 for v in boot.values())
    lo, hi = np.percentile(boot["alpha"], [2.5, 97.5])
    assert lo - 0.05 < TRUE.alpha < hi + 0.05 and hi - lo > 0
    assert np.allclose(boot["a"], boot["beta"] / (boot["alpha"] + boot["beta"]))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_loss_law(N, D, L, n_boot=1)


def test_prediction_run_takes_the_nearest_shape():
    run, pred = prediction_run(CHINCHILLA, 3e12)
    n_opt, _ = compute_optimal(3e12, CHINCHILLA)
    assert all(abs(math.log(run.N / n_opt)) <= abs(math.log(s.N / n_opt)) for s in SHAPES)
    assert pred == pytest.approx(CHINCHILLA(run.N, run.tokens))
    assert run.flops == pytest.approx(3e12, rel=0.05)


# ---- running ----------------------------------------------------------------------------------------------------

def _tiny_data():
    text = (small_corpus("animals") + " ") * 40
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text))
    n = int(len(ids) * 0.8)
    return tok.vocab_size, ids[:n], ids[n:]


def test_tiny_sweep_writes_reuses_and_reads_its_csv(tmp_path):
    torch.set_num_threads(1)
    s = SweepSettings(batch_size=4, block_size=16, val_chars=200)
    runs = [Run(Shape(16, 1, 2), 1e7, 6, 6 * 64), Run(Shape(16, 1, 2), 2e7, 12, 12 * 64)]
    path = tmp_path / "runs.csv"
    rows = sweep(runs, path, settings=s, data=_tiny_data(), log=None)
    assert len(rows) == 2 and rows[1]["val_loss"] < rows[0]["val_loss"] < math.log(_tiny_data()[0]) + 0.5
    df = read_runs(path)
    assert list(df["D"]) == [384, 768] and (df["N"] == Shape(16, 1, 2).N).all()
    assert np.allclose(df["C"], 6 * df["N"] * df["D"]) and (df["seconds"] > 0).all()
    assert df["machine"].str.contains("torch").all()
    messages = []
    again = sweep(runs, path, settings=s, data=_tiny_data(), log=messages.append)
    assert all("reused" in m for m in messages) and len(read_runs(path)) == 2
    assert float(again[0]["val_loss"]) == pytest.approx(rows[0]["val_loss"])


def test_train_run_and_sweep_bad_input(tmp_path):
    V, tr, va = _tiny_data()
    with pytest.raises(ValueError, match="block_size"):
        train_run(Run(Shape(16, 1, 2), 1e7, 2, 128), tr, va[:10], V, SweepSettings(block_size=16))
    with pytest.raises(ValueError, match="grid is empty"):
        sweep([], tmp_path / "x.csv", data=(V, tr, va))
    with pytest.raises(FileNotFoundError, match="python -m course_utils.scaling"):
        read_runs(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a sweep CSV"):
        read_runs(tmp_path / "bad.csv")


def test_stored_sweep_is_consistent():
    df = read_runs()
    grid = df[df["kind"] == "grid"]
    assert len(grid) >= 8 and grid["budget"].nunique() >= 2
    assert np.allclose(grid["C"], 6 * grid["N"] * grid["D"])
    assert ((grid["val_loss"] > 0.5) & (grid["val_loss"] < math.log(94) + 0.1)).all()


def test_command_line_dry_run(capsys):
    assert scaling.main(["--minutes", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "grid:" in out and "C=3e+10" in out
    with pytest.raises(SystemExit):
        scaling.main(["--minutes", "0"])


def test_append_row_checks_its_fields(tmp_path):
    with pytest.raises(ValueError, match="exactly the fields"):
        scaling.append_row(tmp_path / "x.csv", {"N": 1})


def test_prediction_run_with_a_given_shape_and_common_shape():
    grid = plan_runs([3e10, 1e11])
    sh = scaling.common_shape(grid)
    assert all(any(r.shape == sh and r.budget == C for r in grid) for C in (3e10, 1e11))
    assert all(s.N <= sh.N for s in {r.shape for r in grid} if all(
        any(r.shape == s and r.budget == C for r in grid) for C in (3e10, 1e11)))
    run, pred = prediction_run(TRUE, 3e11, shape=sh)
    assert run.shape == sh and run.flops == pytest.approx(3e11, rel=0.02)
    assert pred == pytest.approx(TRUE(run.N, run.tokens))
    with pytest.raises(ValueError, match="no runs"):
        scaling.common_shape([])
    with pytest.raises(ValueError, match="every budget"):
        scaling.common_shape([Run(SHAPES[0], 1e10, 60, 60 * 4096), Run(SHAPES[1], 1e11, 60, 60 * 4096)])
