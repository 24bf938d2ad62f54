"""course_utils.ablation and course_utils.recipe: the ablation runs and summarises, the stored table is complete,
the recipe preset adapts to the text, KeepBest keeps the best weights, `--recipe modern` trains from the command
line."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import replace

import pytest
import torch

from course_utils import ablation, recipe
from course_utils.ablation import CHANGES, combine, helpful, read_csv, summarise
from course_utils.data import small_corpus
from course_utils.model import GPTConfig, MiniGPT
from course_utils.modern import param_count
from course_utils.settings import TrainSettings
from course_utils.train import main, preset


def _rows(values: dict[str, list[float]]) -> list[dict]:
    return [dict(run=name, changes=name, seed=i, steps=10, params=1, val_bits=v)
            for name, vs in values.items() for i, v in enumerate(vs)]


def test_summary_verdicts_use_twice_the_pooled_standard_error():
    s = {r["run"]: r for r in summarise(_rows({"baseline": [3.00, 3.02], "rope": [2.90, 2.91],
                                               "gqa": [3.02, 3.00], "wsd": [3.10, 3.12], "swiglu": [2.95, 2.96],
                                               "relu2": [2.93, 2.94], "rmsnorm": [2.991, 2.991]}))}
    assert s["baseline"]["verdict"] == "-" and s["baseline"]["spread"] == pytest.approx(0.02)
    # rmsnorm: 0.019 better, more than the mean of the two spreads (0.01) but less than 2 SE = 2 x 0.01
    assert s["rmsnorm"]["se2"] == pytest.approx(0.02) and s["rmsnorm"]["verdict"] == "noise"
    assert s["rope"]["verdict"] == "helps" and s["rope"]["delta"] == pytest.approx(-0.105)
    assert s["gqa"]["verdict"] == "noise"
    assert s["wsd"]["verdict"] == "hurts"
    assert helpful(list(s.values())) == ["rope", "relu2"]          # of SwiGLU and ReLU^2 only the better one
    with pytest.raises(ValueError, match="baseline"):
        summarise(_rows({"rope": [1.0]}))
    assert "| rope |" in ablation.table(list(s.values()))


def test_two_se_is_the_pooled_rule():
    # variances 0.0002 and 0.00005 over 2 values each: 2 sqrt(0.0001 + 0.000025)
    assert ablation.two_se([3.00, 3.02], [2.90, 2.91]) == pytest.approx(2 * math.sqrt(0.000125))
    assert ablation.two_se([1.0, 1.0], [2.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match="at least two values"):
        ablation.two_se([1.0], [1.0, 2.0])


def test_combine_and_unknown_change():
    cfg, st = combine(["rope", "muon", "wsd"])
    assert cfg == {"pos": "rope"} and st["optimizer"] == "muon" and st["schedule"] == "wsd"
    with pytest.raises(ValueError, match="unknown change 'alibi'"):
        combine(["alibi"])
    for cfg_ch, _, what in CHANGES.values():    # every change builds a valid model and settings
        assert what
        GPTConfig(vocab_size=10, **cfg_ch)


def test_a_tiny_ablation_run(tmp_path):
    from course_utils import scoreboard
    _, _, val = scoreboard.wiki_char_data()
    rows = ablation.run_ablation(0.5, [0], tmp_path / "a.csv", val_ids=val[:3000], only=["zero_init"],
                                 combos={"both": ["zero_init", "wsd"]}, log=lambda m: None)
    assert [r["run"] for r in rows] == ["baseline", "zero_init", "both"]
    back = read_csv(tmp_path / "a.csv")
    assert [r["run"] for r in back] == ["baseline", "zero_init", "both"]
    for r in back:
        assert r["steps"] >= 1 and r["budget_cpu_s"] == 0.5 and r["eval_stride"] == 64
        assert r["val_bits"] == pytest.approx(r["val_nats"] / math.log(2), abs=1e-4)


def test_two_jobs_and_reuse(tmp_path):
    """Two worker processes give the rows of the runs in the planned order; reuse trains only what is missing."""
    from course_utils import scoreboard
    _, _, val = scoreboard.wiki_char_data()
    out = tmp_path / "a.csv"
    rows = ablation.run_ablation(0.3, [0, 1], out, val_ids=val[:2000], only=["gqa"], log=lambda m: None, jobs=2)
    assert sorted((r["run"], r["seed"]) for r in rows) == [("baseline", 0), ("baseline", 1), ("gqa", 0), ("gqa", 1)]
    back = read_csv(out)
    assert [(r["run"], r["seed"]) for r in back] == [("baseline", 0), ("baseline", 1), ("gqa", 0), ("gqa", 1)]
    assert all(r["threads"] == 1 and r["steps"] >= 1 for r in back)
    logs = []
    again = ablation.run_ablation(0.3, [0, 1, 2], out, val_ids=val[:2000], only=["gqa"], log=logs.append,
                                  reuse=True)
    assert sum("(stored)" in m for m in logs) == 4 and len(logs) == 6     # only seed 2 trained
    assert [r["val_nats"] for r in again[:2]] == [r["val_nats"] for r in back[:2]]
    assert [(r["run"], r["seed"]) for r in read_csv(out)] == [("baseline", 0), ("baseline", 1), ("baseline", 2),
                                                               ("gqa", 0), ("gqa", 1), ("gqa", 2)]
    back = read_csv(out)
    with open(out, "a") as f:                                             # a row no run plans: dropped
        f.write("old,rope,0,0.3,1,1,2048,0.3,0.3,1,64,4.0,5.8\n")
    ablation.run_ablation(0.3, [0, 1, 2], out, val_ids=val[:2000], only=["gqa"], log=lambda m: None, reuse=True)
    assert read_csv(out) == back                     # nothing trained; the file holds the planned rows, in order
    with pytest.raises(ValueError, match="jobs"):
        ablation.run_ablation(0.3, [0], None, jobs=0)


def test_command_line_errors(capsys):
    with pytest.raises(SystemExit):
        ablation.main(["--quick", "--only", "alibi"])
    assert "unknown change" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ablation.main(["--quick", "--combo", "x=rope+nothing"])
    assert "--combo" in capsys.readouterr().err


def test_the_stored_table_is_complete():
    rows = read_csv()
    runs = {r["run"] for r in rows}
    assert {"baseline", "all", "modern"} | set(CHANGES) <= runs           # every change alone, and together
    modern = [r for r in rows if r["run"] == "modern"]                    # the preset is the run it was chosen by
    assert {r["changes"] for r in modern} == {"+".join(recipe.RECIPE)}
    mean = {n: statistics.fmean(r["val_bits"] for r in rows if r["run"] == n) for n in runs}
    assert mean["modern"] == min(mean.values())                            # ... and the best one in the table
    for name in runs:
        seeds = {r["seed"] for r in rows if r["run"] == name}
        assert len(seeds) >= 2, name                                      # the spread needs two seeds
    assert len({(r["budget_cpu_s"], r["threads"], r["eval_stride"]) for r in rows}) == 1   # one protocol
    assert rows[0]["budget_cpu_s"] == ablation.FULL_CPU_SECONDS
    _, _, val = __import__("course_utils.scoreboard", fromlist=["x"]).wiki_char_data()
    for r in rows:
        assert 0 < r["val_bits"] < math.log2(96) and r["val_nats"] == pytest.approx(r["val_bits"] * math.log(2),
                                                                                    abs=1e-4)


def test_the_stored_confirmation_uses_fresh_seeds_and_the_same_protocol():
    table, conf = read_csv(), read_csv(ablation.CONFIRM_CSV_PATH)
    assert {r["run"] for r in conf} == {"baseline", "modern"}
    assert {r["changes"] for r in conf if r["run"] == "modern"} == {"+".join(recipe.RECIPE)}
    for name in ("baseline", "modern"):
        seeds = {r["seed"] for r in conf if r["run"] == name}
        assert seeds == set(ablation.CONFIRM_SEEDS)                        # three seeds each ...
        assert not seeds & {r["seed"] for r in table}                      # ... none of them the table's
    protocol = {(r["budget_cpu_s"], r["threads"], r["eval_stride"]) for r in table + conf}
    assert len(protocol) == 1


def test_confirm_runs_the_recipe_and_the_baseline(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ablation, "run_ablation", lambda *a, **k: calls.append((a, k)) or [])
    ablation.confirm(tmp_path / "c.csv", seeds=(7, 8), cpu_seconds=1.0, jobs=1)
    (cpu, seeds, out), kw = calls[0][0][:3], calls[0][1]
    assert (cpu, seeds, out) == (1.0, [7, 8], tmp_path / "c.csv")
    assert kw["only"] == [] and kw["combos"] == {"modern": list(recipe.RECIPE)} and kw["auto"] is False


# ---- the recipe -----------------------------------------------------------------------------------------------

def test_regularisation_by_tokens_per_parameter():
    assert recipe.regularisation(3_000_000, 1_000_000) == (0.0, 0.1)
    assert recipe.regularisation(1_500_000, 1_000_000) == (0.1, 0.1)
    assert recipe.regularisation(500_000, 1_000_000) == (0.2, 0.2)
    with pytest.raises(ValueError, match="positive"):
        recipe.regularisation(0, 10)


def test_regularisation_drops_dropout_and_weight_decay_for_a_run_that_reads_its_text_a_few_times():
    passes = recipe.REGULARISE_FROM_PASSES
    small, big = 500_000, 1_000_000                 # r = 0.5: (0.2, 0.2) when the run is long enough
    assert recipe.regularisation(small, big, budget_tokens=int(passes * small)) == (0.2, 0.2)
    assert recipe.regularisation(small, big, budget_tokens=int(passes * small) - 1) == (0.0, 0.0)
    assert recipe.regularisation(1_500_000, big, budget_tokens=2_000_000) == (0.0, 0.0)
    assert recipe.regularisation(1_500_000, big, budget_tokens=int(passes * 1_500_000)) == (0.1, 0.1)
    assert recipe.regularisation(3_000_000, big, budget_tokens=10**9) == (0.0, 0.1)
    cfg, st = recipe.modern_preset(96, 200_000, budget_tokens=400_000)
    assert (cfg.dropout, st.weight_decay) == (0.0, 0.0)
    cfg, st = recipe.modern_preset(96, 200_000)                          # no budget: by tokens per parameter
    assert (cfg.dropout, st.weight_decay) == (0.2, 0.2)
    with pytest.raises(ValueError, match="budget_tokens should be positive"):
        recipe.regularisation(small, big, budget_tokens=0)


def test_modern_preset_has_the_recipe_and_adapts():
    big_cfg, big_st = recipe.modern_preset(96, 3_000_000)
    small_cfg, small_st = recipe.modern_preset(96, 200_000)
    base, base_st = preset(96)
    assert (big_cfg.d_model, big_cfg.n_layers, big_cfg.block_size) == (base.d_model, base.n_layers, base.block_size)
    cfg_ch, st_ch = combine(list(recipe.RECIPE))
    for k, v in cfg_ch.items():
        assert getattr(big_cfg, k) == v
    for k, v in st_ch.items():
        assert getattr(big_st, k) == v
    assert big_cfg.dropout == 0.0 and small_cfg.dropout == 0.2 and small_st.weight_decay == 0.2
    assert big_st.batch_size == base_st.batch_size                 # budget unknown: the preset's batch ...
    assert big_st.muon_momentum == TrainSettings(max_steps=1).muon_momentum == 0.95  # ... and Muon's default
    five_min = recipe.modern_preset(96, 3_000_000, budget_tokens=5_000_000)[1]
    assert five_min.batch_size == 128 and five_min.weight_decay == 0.0          # 1.7 passes: no weight decay
    assert five_min.muon_momentum == recipe.MUON_MOMENTUM < 0.95                 # the momentum tuned on a CPU
    long_run = recipe.modern_preset(96, 3_000_000, budget_tokens=40_000_000)[1]
    assert long_run.batch_size == 128 and long_run.weight_decay == 0.1          # 13 passes: by tokens per parameter
    assert recipe.modern_preset(96, 3_000_000, budget_tokens=1_000_000)[1].batch_size == 32
    # two processes share the budget: each makes half the steps, so the batch is the one for half the tokens
    assert recipe.modern_preset(96, 3_000_000, budget_tokens=5_000_000, world_size=2)[1].batch_size == 64
    gpu_base, gpu_st = preset(96, "cuda")[1], recipe.modern_preset(96, 3_000_000, "cuda", budget_tokens=10**9)[1]
    assert gpu_st.batch_size == gpu_base.batch_size                  # not tuned on a GPU: the preset's batch
    assert gpu_st.muon_momentum == 0.95                              # ... and Muon's default momentum
    assert big_st.cpu_bf16 and five_min.cpu_bf16 and not base_st.cpu_bf16   # bf16 products: the recipe on a CPU only
    assert not gpu_st.cpu_bf16                                       # (a GPU trains in bf16 anyway)
    with pytest.raises(ValueError, match="world_size should be >= 1"):
        recipe.modern_preset(96, 3_000_000, budget_tokens=5_000_000, world_size=0)


def test_the_budget_is_timed_at_the_largest_batch_the_rule_may_pick_without_dropout():
    cfg, st = recipe.modern_preset(96, 500_000)                  # a small text: dropout until the budget is known
    assert cfg.dropout > 0
    probe_cfg, probe_st = recipe.probe(cfg, st)
    assert probe_st.batch_size == max(recipe.BATCH_SIZES) != st.batch_size
    assert probe_st.eval_batches * probe_st.batch_size == recipe.EVAL_WINDOWS
    assert (probe_st.lr, probe_st.muon_lr, probe_st.optimizer) == (st.lr, st.muon_lr, st.optimizer)
    assert probe_cfg.dropout == 0.0 and replace(probe_cfg, dropout=cfg.dropout) == cfg   # only the dropout differs
    gpu_cfg, gpu_st = recipe.modern_preset(96, 500_000, "cuda")
    assert recipe.probe(gpu_cfg, gpu_st, "cuda")[1] == gpu_st               # the batch is not tuned on a GPU


def test_every_evaluation_reads_the_same_windows_whatever_the_batch():
    for budget in (None, 1_000_000, 3_000_000, 5_000_000):       # batch 32, 32, 64, 128
        st = recipe.modern_preset(96, 3_000_000, budget_tokens=budget)[1]
        assert st.eval_batches * st.batch_size == recipe.EVAL_WINDOWS, (budget, st.batch_size, st.eval_batches)
    assert recipe.modern_preset(96, 3_000_000, budget_tokens=5_000_000)[1].eval_batches == 2
    gpu_base, gpu_st = preset(96, "cuda")[1], recipe.modern_preset(96, 3_000_000, "cuda")[1]
    assert gpu_st.eval_batches == gpu_base.eval_batches              # the GPU preset already reads more windows


def test_batch_for_takes_the_largest_batch_that_still_makes_enough_steps():
    steps, block = recipe.MIN_STEPS, 64
    assert recipe.batch_for(steps * 128 * block, block) == 128
    assert recipe.batch_for(steps * 128 * block - 1, block) == 64
    assert recipe.batch_for(steps * 64 * block - 1, block) == 32
    assert recipe.batch_for(1, block) == 32 == min(recipe.BATCH_SIZES)         # too short for any: the smallest
    assert recipe.batch_for(10**12, block) == 128 == max(recipe.BATCH_SIZES)
    assert recipe.batch_for(steps * 128 * 32, 32) == 128                        # steps count windows of the block
    with pytest.raises(ValueError, match="should be positive"):
        recipe.batch_for(0, block)


def test_keep_best_restores_the_best_weights():
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    keep = recipe.KeepBest(m)
    keep({"val": [2.0], "val_step": [10]})
    best = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        m.weight.add_(1.0)
    keep({"val": [2.0, 2.5], "val_step": [10, 20]})            # worse: not kept
    assert keep.restore() == (2.0, 10)
    for k, v in m.state_dict().items():
        assert torch.equal(v, best[k])


def test_param_count_of_the_preset():
    cfg, _ = preset(96)
    assert param_count(cfg) == MiniGPT(cfg).num_params()


def test_command_line_recipe_modern(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text((small_corpus("animals") + "\n") * 40)
    out = tmp_path / "c.pt"
    assert main(["--text", str(text), "--minutes", "0.05", "--out", str(out), "--recipe", "modern",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    # about 20,000 training characters for 740,000 parameters: r < 1, so a long run would get dropout and weight
    # decay 0.2; 3 seconds make a pass or two over them, too few to memorise: neither
    m = re.search(r"recipe modern: ([\d.]+) training tokens per parameter, about ([\d.]+) passes over them in 0.05 "
                  r"min -> dropout ([\d.]+), weight decay ([\d.]+), batch (\d+), Muon's momentum ([\d.]+)", printed)
    assert m and float(m[1]) < 1 and out.exists(), printed
    assert int(m[5]) == 32                       # 3 seconds are far fewer tokens than 500 steps of a larger batch
    assert float(m[6]) == recipe.MUON_MOMENTUM   # a CPU run whose budget is known: the tuned momentum
    long_run = float(m[2]) >= recipe.REGULARISE_FROM_PASSES
    assert (float(m[3]), float(m[4])) == ((0.2, 0.2) if long_run else (0.0, 0.0))
    from course_utils.checkpoint import load_model
    model, tok, state = load_model(out)
    assert model.config.dropout == float(m[3])
    assert model.config.pos == "rope" and model.config.mlp == "relu2" and not model.config.tied
    assert model.config.n_kv_heads == 2 and model.config.qk_norm
    with pytest.raises(SystemExit):
        main(["--text", str(text), "--minutes", "1", "--recipe", "llama"])


def test_override_sets_fields_of_either_dataclass_with_their_types():
    cfg, st = recipe.modern_preset(96, 3_000_000)
    cfg2, st2 = recipe.override(cfg, st, ["batch_size=128", "muon_lr=0.1", "d_model=192", "bias=true",
                                          "n_kv_heads=4", "schedule=cosine"])
    assert (st2.batch_size, st2.muon_lr, st2.schedule) == (128, 0.1, "cosine")
    assert (cfg2.d_model, cfg2.bias, cfg2.n_kv_heads) == (192, True, 4)
    assert type(st2.batch_size) is int and type(st2.muon_lr) is float
    assert recipe.override(cfg, st, []) == (cfg, st)
    assert recipe.modern_preset(96, 3_000_000) == (cfg, st)            # the inputs are not changed in place
    for spec, msg in [("batch_size", "name=value"), ("width=3", "'width' is not a setting"),
                      ("batch_size=6x4", "not a int"), ("bias=maybe", "not a bool"), ("=3", "name=value")]:
        with pytest.raises(ValueError, match=msg):
            recipe.override(cfg, st, [spec])
    with pytest.raises(ValueError, match="batch_size should be >= 1"):      # the dataclasses' own checks still run
        recipe.override(cfg, st, ["batch_size=0"])


def _changes(row: dict) -> dict[str, str]:
    """The settings a stored tuning run changed with --set ("name=value" words)."""
    return dict(kv.split("=") for kv in row["settings"].split() if "=" in kv)


def test_the_stored_tuning_supports_the_batch_rule():
    everything = ablation.read_tuning()
    assert {(r["threads"], r["clock"]) for r in everything} == {(2, "wall")}       # one protocol ...
    fixed = [r for r in everything if "max_steps=" in r["settings"]]             # runs of a fixed number of steps:
    screens = [r for r in fixed if r["code"] <= 4]                                # in fp32 ...
    bf16 = [r for r in fixed if r["code"] == 5]                                   # ... and in bf16 (code 5)
    rows = [r for r in everything if r not in fixed]
    assert {r["minutes"] for r in rows} == {1.0, 5.0}                             # ... at two budgets
    assert {r["code"] for r in rows} == {1, 2, 3, 4, 5}                           # five states of the code
    for r in everything:                                                           # the batch each run trained with
        assert r["tokens"] == r["steps"] * r["batch"] * 64, r
        if r["settings"].startswith("batch_size="):
            assert r["batch"] == int(r["settings"].split()[0].split("=")[1]), r

    def runs(batch, seeds, minutes=5.0, text="wikipedia", model="recipe", code=1):
        settings = "-" if batch is None else f"batch_size={batch}"
        rs = [r for r in rows if (r["model"], r["settings"], r["text"], r["minutes"], r["code"]) ==
              (model, settings, text, minutes, code) and r["seed"] in seeds]
        assert len(rs) == len(seeds), (batch, seeds, minutes, text, model, code)
        return rs

    def bits(*a, **k):
        return statistics.fmean(r["val_bits"] for r in runs(*a, **k))

    for minutes in (5.0, 1.0):                                                     # the batch sweep (code 1)
        sweep = [r for r in rows if r["minutes"] == minutes and r["code"] == 1]
        tried = {int(r["settings"].split("=")[1]) for r in sweep if r["settings"].startswith("batch_size=")}
        assert {32, 128} <= tried
        best = min(tried, key=lambda b: bits(b, (0, 1), minutes))                  # the winner on seeds 0 and 1 ...
        tokens = statistics.fmean(r["tokens"] for r in sweep)
        assert recipe.batch_for(int(tokens), 64) == best                           # ... is the rule's batch there
    assert bits(128, (2, 3)) < bits(32, (2, 3))                                    # confirmed on fresh seeds
    for text, seeds in (("wikipedia", (2, 3)), ("shakespeare", (0, 1))):            # the recipe against the preset
        assert bits(128, seeds, text=text) < bits(None, seeds, text=text, model="preset")
    for code, text, seeds in ((2, "wikipedia", (2, 3)), (2, "shakespeare", (0, 1)),    # ... and later, its batch
                              (3, "wikipedia", (2, 3)), (3, "shakespeare", (2, 3)),    # by the rule, run for run
                              (4, "wikipedia", (4, 5)), (4, "shakespeare", (4, 5)),
                              (5, "wikipedia", (4, 5, 6, 7)), (5, "shakespeare", (4, 5, 6, 7))):
        for pre, rec in zip(runs(None, seeds, text=text, model="preset", code=code),
                            runs(None, seeds, text=text, code=code), strict=True):
            assert rec["val_bits"] < pre["val_bits"], (pre, rec)
            assert code < 5 or rec["tokens_per_s"] > pre["tokens_per_s"], (pre, rec)   # bf16: faster in every pair
    for text in ("wikipedia", "shakespeare"):              # bf16 (code 5) against fp32 (code 4), the same seeds:
        for fp32, bf in zip(runs(None, (4, 5), text=text, code=4), runs(None, (4, 5), text=text, code=5),
                            strict=True):
            assert bf["tokens_per_s"] > fp32["tokens_per_s"] and bf["steps"] > fp32["steps"], (fp32, bf)
    assert {r["train_chars"] for r in everything if r["text"] == "shakespeare"} == {1_042_058}
    # the rule's weight decay (none in a run of a few passes): at equal steps, 0 beat 0.1 on both texts, seed by seed
    sized = [r for r in screens if _changes(r).keys() & {"n_layers", "d_model"} or r["batch"] != 128]
    assert {(r["steps"], r["batch"]) for r in screens if r not in sized} == {(680, 128)}
    for text in ("wikipedia", "shakespeare"):
        for seed in (0, 1):
            wd = {r["weight_decay"]: r["val_bits"] for r in screens if (r["text"], r["seed"]) == (text, seed)
                  and r["settings"] == f"batch_size=128 max_steps=680 weight_decay={r['weight_decay']}"}
            assert wd[0.0] < wd[0.1], (text, seed, wd)
        run = next(r for r in screens if r["text"] == text)                      # ... in runs of a few passes
        assert run["tokens"] / run["train_chars"] < recipe.REGULARISE_FROM_PASSES
    # Muon's momentum on a CPU: at equal steps and no weight decay, the tuned value beat the default 0.95 on the
    # Wikipedia text seed by seed and beyond 2 SE, and was not worse beyond 2 SE on Shakespeare, where a smaller
    # value lost
    def screen(text, seed, settings):                 # the one stored screen of these settings
        rs = [r for r in screens if (r["text"], r["seed"], r["settings"]) == (text, seed, settings)]
        assert len(rs) == 1, (text, seed, settings, rs)
        return rs[0]

    def momentum(text, seed, mu):
        run = screen(text, seed, "batch_size=128 max_steps=680 weight_decay=0.0" if mu == 0.95 else
                     f"batch_size=128 max_steps=680 muon_momentum={mu:g}")
        assert run["weight_decay"] == 0.0, run
        return run["val_bits"]

    tuned = recipe.MUON_MOMENTUM
    for seed in (0, 1):
        assert momentum("wikipedia", seed, tuned) < momentum("wikipedia", seed, 0.95), seed

    def gain(text):                         # mean of the tuned momentum minus 0.95 over seeds 0 and 1, and 2 SE
        a, b = [momentum(text, s, tuned) for s in (0, 1)], [momentum(text, s, 0.95) for s in (0, 1)]
        return statistics.fmean(a) - statistics.fmean(b), ablation.two_se(a, b)

    diff, se2 = gain("wikipedia")
    assert diff < -se2, (diff, se2)         # better beyond 2 SE on the text the recipe is tuned on ...
    diff, se2 = gain("shakespeare")
    assert diff < se2, (diff, se2)          # ... and not worse beyond 2 SE on the second text
    assert momentum("shakespeare", 0, tuned) < momentum("shakespeare", 0, 0.8)
    # width, depth and batch at equal wall time (each run given the steps that take as long as the recipe's 680):
    # every other shape ended above the recipe's 4 layers of 128, and batch 64 was within the spread of two seeds, so
    # the recipe keeps notebook 08's size and the batch of its rule
    cfg, st = recipe.modern_preset(96, 3_000_000, budget_tokens=5_500_000)
    assert (cfg.n_layers, cfg.d_model, st.batch_size) == (4, 128, 128)
    assert {r["text"] for r in sized} == {"wikipedia", "shakespeare"}
    for r in sized:
        ch = _changes(r)
        other = replace(cfg, n_layers=int(ch.get("n_layers", cfg.n_layers)),
                        d_model=int(ch.get("d_model", cfg.d_model)))
        cost = param_count(other) * r["batch"] / (param_count(cfg) * st.batch_size)   # the work of a step, roughly
        assert (r["steps"] > 680) == (cost < 1), r                                 # cheaper steps: more of them
        ours = momentum(r["text"], r["seed"], tuned)
        if ch.keys() & {"n_layers", "d_model"}:
            assert r["val_bits"] > ours, r                                         # each other shape lost
        else:                                                                      # batch 64: a gain smaller than
            spread = abs(momentum(r["text"], 0, tuned) - momentum(r["text"], 1, tuned))   # seed 0 against seed 1
            assert r["batch"] == 64 and abs(r["val_bits"] - ours) < spread, r
    # warm-up 60 instead of the recipe's 30: within 2 SE on both texts (seeds 0 and 1), so the recipe keeps 30
    assert st.warmup_steps == 30
    for text in ("wikipedia", "shakespeare"):
        longer = [screen(text, s, "batch_size=128 max_steps=680 warmup_steps=60")["val_bits"] for s in (0, 1)]
        ours = [momentum(text, s, tuned) for s in (0, 1)]
        assert abs(statistics.fmean(longer) - statistics.fmean(ours)) < ablation.two_se(longer, ours), text
    # bf16 products (code 5, the recipe on a CPU with bf16 instructions): at the recipe's 680 steps they end within
    # 2 SE of fp32 on both texts (seeds 0 and 1); at the steps of five minutes in bf16, on Shakespeare seed 0, the
    # recipe's size still beats 5 layers and width 160 given the steps their cost allows
    assert st.cpu_bf16

    def bf16_screen(text, seed, **changed):
        want = {"batch_size": "128", "dropout": "0.0", "weight_decay": "0.0"} | changed
        rs = [r for r in bf16 if (r["text"], r["seed"]) == (text, seed) and _changes(r) == want]
        assert len(rs) == 1, (text, seed, changed, rs)
        assert rs[0]["dropout"] == rs[0]["weight_decay"] == 0.0, rs[0]
        return rs[0]

    for text in ("wikipedia", "shakespeare"):
        lower = [bf16_screen(text, s, max_steps="680")["val_bits"] for s in (0, 1)]
        ours = [momentum(text, s, tuned) for s in (0, 1)]
        assert abs(statistics.fmean(lower) - statistics.fmean(ours)) < ablation.two_se(lower, ours), text
    base = bf16_screen("shakespeare", 0, max_steps="940")
    shapes = [r for r in bf16 if _changes(r).keys() & {"n_layers", "d_model"}]
    assert len(shapes) == 2 and len(bf16) == 7
    for r in shapes:
        assert r["steps"] < base["steps"] and r["val_bits"] > base["val_bits"], r
