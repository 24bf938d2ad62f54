import random

import numpy as np
import pytest
import torch

from course_utils import runtime


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("YES", True), (" on ", True),
                                            ("0", False), ("false", False), ("", False), ("Off", False)])
def test_quick_mode_values(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_QUICK", value)
    assert runtime.quick_mode() is expected


def test_quick_mode_unset_is_full(monkeypatch):
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    assert runtime.quick_mode() is False


@pytest.mark.parametrize("bad", ["2", "quick", "maybe", "1.0"])
def test_quick_mode_bad_value_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("COURSE_QUICK", bad)
    with pytest.raises(runtime.QuickModeError, match="COURSE_QUICK=1"):
        runtime.quick_mode()


def test_budget_follows_the_mode(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert runtime.budget(full=1000, quick=10) == 10
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert runtime.budget(full=1000, quick=10) == 1000
    with pytest.raises(ValueError, match="should not exceed"):
        runtime.budget(full=1, quick=5)


def test_mode_banner_says_which_mode(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert runtime.mode_banner().startswith("QUICK MODE")
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert runtime.mode_banner().startswith("Full mode")


def test_device_picks_and_explains(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = runtime.device()
    line = capsys.readouterr().out
    assert line.startswith(f"Device: {dev.type} (")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert dev.type == expected


def test_device_forced_and_unavailable(monkeypatch, capsys):
    assert runtime.device("cpu", verbose=False).type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.device().type == "cpu"
    assert "as asked" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Unknown device"):
        runtime.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            runtime.device("cuda")


def test_seed_everything_repeats_every_generator():
    runtime.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    runtime.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError):
        runtime.seed_everything(-1)


def test_autocast_is_a_noop_on_cpu():
    with runtime.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_peak_flops_is_a_measured_speed_and_restores_the_threads():
    before = torch.get_num_threads()
    one = runtime.peak_flops_per_s("cpu", threads=1, n=256, repeats=3)
    assert torch.get_num_threads() == before
    assert 1e8 < one < 1e13                # between 0.1 GFLOP/s and 10 TFLOP/s for one CPU thread
    for bad in (dict(n=8), dict(repeats=0), dict(threads=0)):
        with pytest.raises(ValueError, match="peak_flops_per_s"):
            runtime.peak_flops_per_s("cpu", **bad)


@pytest.mark.parametrize("flags,native", [("fpu sse2 avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                                          ("fpu amx_tile amx_bf16 amx_int8", True), ("fpu avx512_bf16x", False)])
def test_cpu_bf16_native_reads_the_cpus_flags(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: a CPU with avx512_bf16 in its name\nflags\t\t: {flags}\n")
    assert runtime.cpu_bf16_native(str(info)) is native
    assert runtime.cpu_bf16_native(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_autocast_only_when_asked_and_native(monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: native)
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with runtime.autocast("cpu", cpu_bf16=True):
        y = a @ b
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    with runtime.autocast("cpu"):                                  # not asked: fp32 whatever the CPU
        assert (a @ b).dtype == torch.float32
    assert runtime.precision("cpu") == "fp32"
    assert runtime.precision("cpu", True).startswith("bf16" if native else "fp32 (bf16 asked for")
    assert runtime.precision("cuda").startswith("bf16")
