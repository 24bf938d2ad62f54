"""course_utils.distributed and the torchrun path of course_utils.train: one DDP step on two half-batches (two CPU
processes, gloo, started by torchrun) equals one single-process step on the whole batch; the command line's bad
input gives one line `error: ...` and exit status 2, from one process and from torchrun."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from course_utils import distributed
from course_utils import train as train_mod
from course_utils.checkpoint import load_checkpoint, save_checkpoint
from course_utils.data import small_corpus, train_val_split
from course_utils.model import GPTConfig, MiniGPT
from course_utils.tokenizers import CharTokenizer
from course_utils.train import TrainSettings, main, train

REPO = Path(__file__).resolve().parent.parent
TEXT = (small_corpus("animals") + " ") * 25
B, T = 8, 16

# The worker each torchrun process runs: the same model and data as _single_step below; rank r trains one step on
# half r of the batch. In float64: AdamW's first step divides each gradient by its own size (m / sqrt(v) ~ sign),
# which turns float32 rounding of near-zero gradients (summed in another order) into differences of ~1e-5; in
# float64 the arithmetic is the same and the rounding is gone, so 1e-6 tests the algorithm, not the rounding.
WORKER = textwrap.dedent("""
    import sys, torch
    from course_utils import distributed, train as train_mod
    from course_utils.model import GPTConfig, MiniGPT
    from course_utils.train import TrainSettings, train
    x, y = torch.load(sys.argv[1])
    d = distributed.setup("cpu")
    assert d.world_size == 2, d
    half = len(x) // d.world_size
    xs, ys = x[d.rank * half:(d.rank + 1) * half], y[d.rank * half:(d.rank + 1) * half]
    train_mod.get_batch = lambda ids, batch_size, T, device, generator=None: (xs, ys)
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig(vocab_size=int(sys.argv[3]), block_size=16, d_model=32, n_heads=4, n_layers=2)).double()
    s = TrainSettings(max_steps=1, batch_size=half, lr=3e-3, warmup_steps=1, eval_interval=None, eval_batches=1)
    res = train(model, torch.arange(100) % int(sys.argv[3]), torch.arange(40) % int(sys.argv[3]), s,
                progress=False, dist=d)
    if d.is_main:
        torch.save(res.model.state_dict(), sys.argv[2])
    distributed.cleanup()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], nproc: int = 2, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, **kw)


def _batch(vocab: int):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocab, (B, T + 1), generator=g)
    return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()


def _single_step(x, y, vocab: int) -> dict[str, torch.Tensor]:
    old = train_mod.get_batch
    train_mod.get_batch = lambda ids, batch_size, T, device, generator=None: (x, y)
    try:
        torch.manual_seed(0)
        model = MiniGPT(GPTConfig(vocab_size=vocab, block_size=16, d_model=32, n_heads=4, n_layers=2)).double()
        s = TrainSettings(max_steps=1, batch_size=len(x), lr=3e-3, warmup_steps=1, eval_interval=None,
                          eval_batches=1)
        res = train(model, torch.arange(100) % vocab, torch.arange(40) % vocab, s, progress=False)
    finally:
        train_mod.get_batch = old
    return res.model.state_dict()


def test_one_process_without_torchrun_is_not_distributed(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    d = distributed.setup("cpu")
    assert (d.rank, d.world_size, d.enabled, d.is_main) == (0, 1, False, True)
    m = torch.nn.Linear(2, 2)
    assert distributed.wrap(m, d) is m and d.agree(3.5, False) == (3.5, False)
    assert distributed.backend("cpu") == "gloo" and distributed.backend("cuda") == "nccl"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        distributed.from_env()


def test_ddp_step_on_two_half_batches_equals_one_step_on_the_whole_batch(tmp_path):
    vocab = CharTokenizer(TEXT).vocab_size
    x, y = _batch(vocab)
    torch.save((x, y), tmp_path / "batch.pt")
    (tmp_path / "worker.py").write_text(WORKER)
    r = _torchrun([str(tmp_path / "worker.py"), str(tmp_path / "batch.pt"), str(tmp_path / "ddp.pt"), str(vocab)])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    whole = _single_step(x, y, vocab)
    half = _single_step(x[: B // 2], y[: B // 2], vocab)        # what rank 0 alone would have done
    torch.manual_seed(0)
    start = MiniGPT(GPTConfig(vocab_size=vocab, block_size=16, d_model=32, n_heads=4, n_layers=2)).double().state_dict()
    assert ddp.keys() == whole.keys()
    worst = max((ddp[k] - whole[k]).abs().max().item() for k in whole)
    print(f"largest difference DDP vs whole batch: {worst:.2e}")
    assert worst < 1e-6, f"DDP differs from the whole-batch step by {worst:.2e}"
    # the comparison can fail: the step moved the weights, and a step on one half alone lands elsewhere
    assert max((whole[k] - start[k]).abs().max().item() for k in whole) > 1e-3
    assert max((half[k] - whole[k]).abs().max().item() for k in whole) > 1e-4


# ---- the command line's bad input -------------------------------------------------------------------------------

def _write_text(tmp_path) -> Path:
    p = tmp_path / "text.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def _one_error_line(capsys, fragment: str) -> None:
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("case, fragment", [
    ("missing", "no such file"),
    ("latin1", "is not UTF-8 text (byte 0xe9"),
    ("minutes", "--minutes should be a number of minutes > 0, got -1"),
    ("cuda", "'cuda' was asked for but is not available"),
])
def test_bad_input_is_one_error_line_and_status_2(tmp_path, capsys, monkeypatch, case, fragment):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    text = _write_text(tmp_path)
    args = ["--text", str(text), "--minutes", "0.01", "--out", str(tmp_path / "c.pt"), "--no-progress"]
    if case == "missing":
        args[1] = str(tmp_path / "nothing.txt")
    elif case == "latin1":
        (tmp_path / "latin1.txt").write_bytes(("caf\u00e9 " * 40).encode("latin-1"))
        args[1] = str(tmp_path / "latin1.txt")
    elif case == "minutes":
        args[3] = "-1"
    elif case == "cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU")
        args += ["--device", "cuda"]
    assert main(args) == 2
    _one_error_line(capsys, fragment)
    assert not (tmp_path / "c.pt").exists()


def _checkpoint(tmp_path, text: str, elapsed: float, **cfg) -> Path:
    tok = CharTokenizer(text)
    config, _ = train_mod.preset(tok.vocab_size, "cpu")
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text)), 0.1)
    block = max(8, min(config.block_size, len(val_ids) // 2, len(train_ids) // 2))   # what main() picks
    model = MiniGPT(replace(config, block_size=block, **cfg))
    return save_checkpoint(tmp_path / "c.pt", model, tokenizer=tok, step=10, elapsed=elapsed)


@pytest.mark.parametrize("case, fragment", [
    ("vocabulary", "another vocabulary"),
    ("size", "another size: d_model=64 (here 128)"),
    ("budget", "has already trained for 90 s, the whole budget of --minutes 1"),
])
def test_resume_that_cannot_continue_is_one_error_line(tmp_path, capsys, case, fragment):
    text = _write_text(tmp_path)
    if case == "vocabulary":
        path = _checkpoint(tmp_path, TEXT.upper(), 0.0)
    elif case == "size":
        path = _checkpoint(tmp_path, TEXT, 0.0, d_model=64)
    else:
        path = _checkpoint(tmp_path, TEXT, 90.0)
    before = path.read_bytes()
    assert main(["--text", str(text), "--minutes", "1", "--out", str(path), "--resume", "--no-progress"]) == 2
    _one_error_line(capsys, fragment)
    assert path.read_bytes() == before


def test_interrupt_names_the_resume_flag(tmp_path, capsys, monkeypatch):
    text = _write_text(tmp_path)
    real, calls = train_mod.get_batch, []

    def interrupt_on_third(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "get_batch", interrupt_on_third)
    out = tmp_path / "c.pt"
    assert main(["--text", str(text), "--minutes", "1", "--out", str(out), "--no-progress"]) == 130
    printed = capsys.readouterr().out
    step = load_checkpoint(out)["step"]
    assert f"Interrupted at step {step}: the model keeps its weights" in printed and step >= 1, printed
    assert "Run again with --resume to continue." in printed and "resume=True" not in printed


def test_the_command_prints_no_traceback_and_torchrun_fails_on_every_rank(tmp_path):
    missing = str(tmp_path / "nothing.txt")
    r = subprocess.run([sys.executable, "-m", "course_utils.train", "--text", missing, "--minutes", "1"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2 and r.stderr.strip() == f"error: no such file: {missing}", r.stderr
    r = _torchrun(["-m", "course_utils.train", "--text", missing, "--minutes", "1"])
    ours = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("error:")]
    assert r.returncode != 0 and ours == [f"error: no such file: {missing}"], r.stdout + r.stderr
    assert not re.search(r'File ".*course_utils', r.stdout + r.stderr)    # no traceback from our code
    # torchrun's own summary (its ChildFailedError report) lists both ranks: rank 0 exited with status 2 first,
    # then torchrun stopped rank 1 (or it exited with 2 too)
    assert sorted(re.findall(r" rank\s*:\s*(\d+) \(local_rank", r.stderr)) == ["0", "1"], r.stderr
    assert re.search(r"rank\s*:\s*0 \(local_rank: 0\)\n\s*exitcode\s*:\s*2 ", r.stderr), r.stderr


def test_torchrun_trains_and_a_killed_rank_leaves_the_checkpoint_whole(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(small_corpus("animals") * 200, encoding="utf-8")
    out = tmp_path / "c.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "course_utils.train", "--text", str(text), "--minutes", "0.5",
           "--out", str(out), "--no-progress"]
    import psutil

    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 150
        while not out.exists() and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.5)
        assert out.exists(), "no checkpoint was written"
        first = load_checkpoint(out)
        workers = [c for c in psutil.Process(p.pid).children(recursive=True) if "course_utils.train" in
                   " ".join(c.cmdline())]
        assert len(workers) == 2
        rank1 = next(w for w in workers if w.environ().get("RANK") == "1")
        rank1.send_signal(signal.SIGKILL)
        log, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    assert "step" in log and "val loss" in log                  # rank 0 trained and printed before the kill
    last = load_checkpoint(out)                                  # the last good checkpoint is whole
    assert last["step"] >= first["step"] > 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.pt", "text.txt"]   # no half-written file
