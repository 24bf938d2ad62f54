"""course_utils.train and course_utils.checkpoint: training lowers the loss, checkpoints are atomic and load with
weights_only=True, an interrupt keeps the model and its checkpoint, training resumes, the command line works."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_utils import checkpoint as ckpt_mod
from course_utils import train as train_mod
from course_utils.checkpoint import load_checkpoint, load_model, save_checkpoint
from course_utils.data import small_corpus
from course_utils.model import GPTConfig, MiniGPT
from course_utils.tokenizers import CharTokenizer
from course_utils.train import (
    TrainSettings,
    estimate_loss,
    evaluate,
    expected_tokens,
    lr_at,
    main,
    profile_step,
    train,
)

REPO = Path(__file__).resolve().parent.parent
TEXT = (small_corpus("animals") + " ") * 25


def _data():
    tok = CharTokenizer(TEXT)
    ids = torch.tensor(tok.encode(TEXT))
    n = int(len(ids) * 0.9)
    return tok, ids[:n], ids[n:]


def _model(tok, seed=0):
    torch.manual_seed(seed)
    return MiniGPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, d_model=32, n_heads=4, n_layers=2))


def _settings(**kw):
    base = dict(max_steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_interval=10, eval_batches=2)
    base.update(kw)
    return TrainSettings(**base)


def test_a_tiny_run_lowers_the_loss():
    tok, tr, va = _data()
    m = _model(tok)
    before = estimate_loss(m, va, 8, 4)
    res = train(m, tr, va, _settings(max_steps=40), progress=False)
    assert res.step == 40 and not res.interrupted
    assert abs(before - math.log(tok.vocab_size)) < 0.1
    assert res.val_loss < before - 0.7
    assert res.history["val_step"] == [10, 20, 30, 40]
    assert len(res.history["train"]) == 40 and res.tokens_per_second > 0


def test_learning_rate_schedule_warms_up_then_decays_to_the_floor():
    s = TrainSettings(max_steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 0.0, s) == pytest.approx(1e-4)
    assert lr_at(9, 0.0, s) == pytest.approx(1e-3)
    assert lr_at(10, 0.0, s) == pytest.approx(1e-3)
    assert lr_at(50, 0.5, s) == pytest.approx(0.55e-3)
    assert lr_at(99, 1.0, s) == pytest.approx(1e-4)
    lrs = [lr_at(t, (t - 10) / 90, s) for t in range(10, 100)]
    assert lrs == sorted(lrs, reverse=True)


def test_settings_need_a_budget():
    with pytest.raises(ValueError, match="budget"):
        TrainSettings()
    with pytest.raises(ValueError, match="max_steps"):
        TrainSettings(max_steps=0)


def test_time_budget_stops_the_run():
    tok, tr, va = _data()
    res = train(_model(tok), tr, va, _settings(max_steps=None, minutes=0.02, eval_interval=None, warmup_steps=1,
                                               eval_seconds=0.3), progress=False)
    assert 1.0 <= res.elapsed < 10 and res.step > 1
    lrs = res.history["lr"]
    assert lrs[0] == pytest.approx(3e-3) and lrs == sorted(lrs, reverse=True)   # the cosine follows the clock


def test_evaluate_covers_the_split_and_matches_cross_entropy():
    tok, tr, va = _data()
    m = _model(tok).eval()
    T = m.config.block_size
    va = va[: 5 * T + 1]
    # stride = block_size: consecutive windows, every prediction once
    logits, _ = m(va[:-1].view(5, T))
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, tok.vocab_size), va[1:]).item()
    assert evaluate(m, va, batch_size=3, stride=T) == pytest.approx(want, rel=1e-5)
    # overlapping windows: every prediction once, each with at least T - stride tokens of context
    nll = []
    for t in range(len(va) - 1):
        lo = 0 if t < T else ((t - T) // 4 + 1) * 4            # the window that scores t (stride 4)
        lo = min(lo, len(va) - 1 - T)
        out, _ = m(va[lo:lo + T][None])
        nll.append(torch.nn.functional.cross_entropy(out[0, t - lo][None], va[t + 1][None]).item())
    assert evaluate(m, va, batch_size=5, stride=4) == pytest.approx(sum(nll) / len(nll), rel=1e-5)
    with pytest.raises(ValueError, match="stride"):
        evaluate(m, va, stride=0)


# ---- checkpoints ----------------------------------------------------------------------------------------------

def test_checkpoint_round_trip_with_weights_only(tmp_path):
    tok, tr, va = _data()
    res = train(_model(tok), tr, va, _settings(max_steps=12), tokenizer=tok, checkpoint=tmp_path / "c.pt",
                progress=False)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)          # plain types and tensors only
    assert raw["step"] == 12 and raw["vocab"] == tok.itos and raw["optimizer"] is not None
    assert raw["config"] == res.model.config_dict()
    model, tok2, state = load_model(tmp_path / "c.pt")
    x = va[:16][None]
    assert torch.equal(model(x)[0], res.model.eval()(x)[0])
    assert tok2.itos == tok.itos and state["losses"]["val"] == res.history["val"]


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    tok, tr, va = _data()
    m = _model(tok)
    path = save_checkpoint(tmp_path / "c.pt", m, step=1)
    good = path.read_bytes()
    real_save = torch.save

    def crash(obj, f):
        real_save({"half": torch.zeros(1000)}, f)    # some bytes reach the temporary file ...
        raise KeyboardInterrupt                       # ... then the save is interrupted

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, m, step=2)
    assert path.read_bytes() == good                  # the old checkpoint is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]   # no temporary file left behind
    assert load_checkpoint(path)["step"] == 1


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Train a model first"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a course checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_interrupt_keeps_model_and_checkpoint_and_training_resumes(tmp_path, capsys):
    tok, tr, va = _data()
    path = tmp_path / "c.pt"
    calls = []

    def interrupt_at_second_eval(history):
        calls.append(history["val_step"][-1])
        if len(calls) == 2:
            raise KeyboardInterrupt                      # what Kernel -> Interrupt does

    m = _model(tok)
    res = train(m, tr, va, _settings(max_steps=40), tokenizer=tok, checkpoint=path,
                callback=interrupt_at_second_eval, progress=False)
    assert res.interrupted and res.step == 20 and res.model is m
    assert "Interrupted at step 20" in capsys.readouterr().out
    state = load_checkpoint(path)
    assert state["step"] == 20
    for k, v in m.state_dict().items():                  # the checkpoint holds exactly the model's weights
        assert torch.equal(state["model"][k], v)
    # a fresh model resumes from the checkpoint and finishes the budget
    m2 = _model(tok, seed=1)
    res2 = train(m2, tr, va, _settings(max_steps=40), tokenizer=tok, checkpoint=path, resume=True,
                 progress=False)
    assert not res2.interrupted and res2.step == 40
    assert len(res2.history["train"]) == 40            # the curves continue the first session's
    assert load_checkpoint(path)["step"] == 40
    # resuming into a model of another shape is refused with a clear message
    other = MiniGPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, d_model=16, n_heads=2, n_layers=1))
    with pytest.raises(ValueError, match="resume=False"):
        train(other, tr, va, _settings(), checkpoint=path, resume=True, progress=False)


def test_bad_data_is_named():
    tok, tr, va = _data()
    with pytest.raises(ValueError, match="val_ids"):
        train(_model(tok), tr, va[:10], _settings(), progress=False)


# ---- command line ---------------------------------------------------------------------------------------------

def test_cli_main_trains_and_prints_validation_loss(tmp_path, capsys):
    f = tmp_path / "text.txt"
    f.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "ck.pt"
    code = main(["--text", str(f), "--minutes", "0.03", "--device", "cpu", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "final validation loss" in printed and "nats/char" in printed and "bits/char" in printed
    assert load_checkpoint(out)["vocab"] == CharTokenizer(TEXT).itos


def test_cli_runs_as_a_module(tmp_path):
    f = tmp_path / "text.txt"
    f.write_text(TEXT, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "course_utils.train", "--text", str(f), "--minutes", "0.03",
                           "--device", "cpu", "--out", str(tmp_path / "ck.pt"), "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "val loss" in proc.stdout and "final validation loss" in proc.stdout


# ---- the command line's last two tracebacks, and --resume across recipes ------------------------------------------

def _main_error(capsys, args: list[str], fragment: str) -> str:
    """main(args) exits with status 2 and prints one line `error: ...` containing fragment, no traceback."""
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in out + err
    return lines[0]


def _text_file(tmp_path) -> Path:
    f = tmp_path / "text.txt"
    f.write_text(TEXT, encoding="utf-8")
    return f


@pytest.mark.parametrize("case", ["proc", "under_a_file", "a_directory"])
def test_cli_out_that_cannot_be_written_is_one_error_line(tmp_path, capsys, case):
    if case == "proc":
        if not Path("/proc").is_dir():
            pytest.skip("no /proc on this system")
        out, fragment = Path("/proc/nope/ckpt.pt"), "cannot create the directory /proc/nope"
    elif case == "under_a_file":
        (tmp_path / "plain").write_text("not a folder")
        out, fragment = tmp_path / "plain" / "ckpt.pt", f"cannot create the directory {tmp_path / 'plain'}"
    else:
        out, fragment = tmp_path, "is a directory; give a file name"
    line = _main_error(capsys, ["--text", str(_text_file(tmp_path)), "--minutes", "0.01", "--out", str(out),
                                "--no-progress"], fragment)
    assert f"--out {out}" in line


def test_load_checkpoint_of_a_file_of_another_kind_is_a_clear_error(tmp_path):
    for name, data in (("notes.txt", b"hello world\n"), ("numbers.txt", b"1 2 3\n4 5 6\n"), ("empty.pt", b"")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"{name} is not a course checkpoint .*torch.load cannot read it"):
            load_checkpoint(tmp_path / name)


def test_cli_resume_from_a_file_that_is_not_a_checkpoint_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("these are my notes, not a checkpoint\n" * 3)
    before = out.read_bytes()
    _main_error(capsys, ["--text", str(_text_file(tmp_path)), "--minutes", "0.01", "--out", str(out), "--resume",
                         "--no-progress"], f"--resume: cannot read {out}: {out} is not a course checkpoint")
    assert out.read_bytes() == before


def _checkpoint_as_main_makes(tmp_path, recipe: str) -> Path:
    """A checkpoint of the model `main` builds for TEXT with --recipe ``recipe`` (not trained: the config counts)."""
    from dataclasses import replace

    from course_utils.data import train_val_split
    from course_utils.recipe import modern_preset
    from course_utils.train import preset

    tok = CharTokenizer(TEXT)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(TEXT)), 0.1)
    cfg, _ = modern_preset(tok.vocab_size, len(train_ids), "cpu") if recipe == "modern" else preset(tok.vocab_size)
    block = max(8, min(cfg.block_size, len(val_ids) // 2, len(train_ids) // 2))   # what main() picks
    return save_checkpoint(tmp_path / "ck.pt", MiniGPT(replace(cfg, block_size=block)), tokenizer=tok, step=5,
                           elapsed=1.0)


@pytest.mark.parametrize("trained, given, fragment", [
    ("modern", [], "was trained with --recipe modern; add --recipe modern to continue it"),
    ("gpt2", ["--recipe", "modern"], "was trained with --recipe gpt2 (the default); leave out --recipe modern"),
])
def test_cli_resume_across_recipes_names_the_flag(tmp_path, capsys, trained, given, fragment):
    out = _checkpoint_as_main_makes(tmp_path, trained)
    before = out.read_bytes()
    _main_error(capsys, ["--text", str(_text_file(tmp_path)), "--minutes", "1", "--out", str(out), "--resume",
                         "--no-progress", *given], fragment)
    assert out.read_bytes() == before


def test_cli_resume_with_the_same_recipe_passes_the_checks(tmp_path, capsys):
    """The checkpoint the recipe test writes is one `main` accepts with the right flag (so the test above is fair)."""
    out = _checkpoint_as_main_makes(tmp_path, "modern")
    code = main(["--text", str(_text_file(tmp_path)), "--minutes", "0.02", "--out", str(out), "--resume",
                 "--no-progress", "--device", "cpu", "--recipe", "modern"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "resumed from" in printed.out


@pytest.mark.parametrize("extra", [{}, dict(optimizer="muon", schedule="wsd")])
def test_profile_step_times_each_part_of_the_step_train_runs(extra):
    tok, tr, va = _data()
    m = _model(tok)
    before = [p.detach().clone() for p in m.parameters()]
    loss0 = estimate_loss(m, va, 8, 4)
    parts = profile_step(m, tr, _settings(**extra), steps=30, warmup=2)
    assert list(parts) == ["data", "forward", "backward", "clip", "optimizer", "evaluation", "total"]
    assert all(parts[k] > 0 for k in ("data", "forward", "backward", "clip", "optimizer", "evaluation"))
    assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))
    # it really trained: 32 steps at the peak learning rate moved every weight and lowered the loss
    assert all(not torch.equal(b, p) for b, p in zip(before, m.parameters(), strict=True))
    assert estimate_loss(m, va, 8, 4) < loss0 - 0.3
    no_clip = profile_step(_model(tok), tr, _settings(grad_clip=0.0, eval_interval=None), steps=2)
    assert no_clip["clip"] == 0 and no_clip["evaluation"] == 0
    timed = profile_step(_model(tok), tr, _settings(eval_interval=None, eval_seconds=0.001), steps=2)
    assert timed["evaluation"] > timed["forward"]       # an evaluation of 2 batches after every step: the larger
    with pytest.raises(ValueError, match="steps should be >= 1"):
        profile_step(m, tr, _settings(), steps=0)


def test_expected_tokens_is_the_budget_over_the_profiled_step_time(monkeypatch):
    tok, tr, va = _data()
    cfg = _model(tok).config
    calls = []

    def fake_profile(model, ids, settings, steps, warmup, device):
        calls.append((steps, warmup))
        torch.rand(5)                                      # uses the global random state, as a real step does
        return {"total": 250.0}                            # ms per step

    monkeypatch.setattr(train_mod, "profile_step", fake_profile)
    torch.manual_seed(7)
    want_next = torch.rand(3)
    torch.manual_seed(7)
    n = expected_tokens(cfg, _settings(batch_size=8), tr, minutes=0.5)
    assert n == 30_000 / 250 * 8 * 16 and calls == [(3, 1)]          # 120 steps of 8 x 16 tokens
    assert torch.equal(torch.rand(3), want_next)                      # the random state is as it was


def test_speed_ratio_compares_seconds_per_token_of_models_trained_in_alternation(monkeypatch):
    """A fake clock that advances with the tokens each batch draws: model a (batch 4) costs 1 unit per token, model b
    (batch 8) half of that, so b is exactly twice as fast per token, whatever their batches and the order."""
    tok, tr, va = _data()
    cfg = _model(tok).config
    clock, drawn = [0.0], []
    real_get_batch = train_mod.get_batch

    def costly_batch(ids, batch_size, block, device, generator=None):
        clock[0] += batch_size * block * (1.0 if batch_size == 4 else 0.5)
        drawn.append(batch_size)
        return real_get_batch(ids, batch_size, block, device, generator=generator)

    monkeypatch.setattr(train_mod, "get_batch", costly_batch)
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: clock[0])
    ratio = train_mod.speed_ratio((cfg, _settings(batch_size=4)), (cfg, _settings(batch_size=8)), tr, rounds=3)
    assert ratio == 2.0
    assert drawn.count(4) == 2 * drawn.count(8) == 2 * 5          # equal tokens per round: 2 steps of 4, 1 of 8
    assert drawn[:3] == [4, 4, 8] and drawn[3:6] == [8, 4, 4]       # the order alternates
    slow = train_mod.speed_ratio((cfg, _settings(batch_size=8)), (cfg, _settings(batch_size=4)), tr, rounds=1)
    assert slow == 0.5
    with pytest.raises(ValueError, match="rounds should be >= 1"):
        train_mod.speed_ratio((cfg, _settings()), (cfg, _settings()), tr, rounds=0)
