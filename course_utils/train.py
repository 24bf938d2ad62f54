"""Training a MiniGPT (notebook 08), from a notebook or from the command line.

    result = train(model, train_ids, val_ids, TrainSettings(minutes=5), tokenizer=tok, checkpoint="ckpt.pt")

One step: a random batch of windows -> cross-entropy of the next character -> gradients -> clip their global
norm -> AdamW update with the learning rate of the schedule (linear warm-up, then cosine decay to a floor).
The budget is a number of steps or of minutes (or both: whichever ends first); with a time budget the cosine
follows the fraction of the time used, so the learning rate reaches its floor when the time runs out.

Every ``eval_interval`` steps (or ``eval_seconds``) the loss is measured on fixed validation batches, the
callback is called (the notebook redraws its loss plot there) and a checkpoint is written atomically.
Interrupting (Ctrl-C, or Kernel -> Interrupt in Jupyter) stops cleanly: the model keeps its weights, a checkpoint
of the last finished step is written, and ``train(..., resume=True)`` continues from it.

Command line (any UTF-8 text file, character level)::

    python -m course_utils.train --text FILE --minutes M [--device cpu|cuda|mps] [--out CKPT] [--resume]
                                 [--recipe gpt2|modern]

``--recipe modern`` trains notebook 15's recipe (course_utils.recipe) and keeps the weights with the best
validation loss; it first times a few steps (``expected_tokens``) to count the passes the budget makes over the text.

``profile_step`` times one training step part by part (data, forward, backward, clipping, optimizer, evaluation);
``speed_ratio`` compares the training speed of two models trained in alternation, so both see the same machine.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from . import distributed, modern, runtime, scoreboard
from .checkpoint import load_checkpoint, save_checkpoint
from .data import get_batch
from .model import GPTConfig, MiniGPT, filled_config, is_modern
from .recipe import KeepBest, modern_preset, probe
from .settings import TrainSettings, lr_at, preset
from .tokenizers import CharTokenizer

# TrainSettings, lr_at and preset live in course_utils.settings (which course_utils.recipe uses too); they are
# imported from here as before.
__all__ = ["TrainSettings", "TrainResult", "lr_at", "preset", "make_optimizer", "estimate_loss", "evaluate", "train",
           "plot_losses", "LivePlot", "main", "CommandError"]


@dataclass
class TrainResult:
    """What a training run did. ``history`` holds the curves the notebook plots."""

    model: MiniGPT
    step: int
    elapsed: float                     # seconds spent training (evaluations included), over all sessions
    tokens_per_second: float           # training tokens per second in this session
    interrupted: bool = False
    checkpoint: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def val_loss(self) -> float:
        return self.history["val"][-1] if self.history.get("val") else float("nan")


# ---- the pieces -------------------------------------------------------------------------------------------------

def make_optimizer(model: torch.nn.Module, s: TrainSettings) -> torch.optim.AdamW:
    """AdamW; weight decay on the weight matrices (and the embedding), none on biases and LayerNorm gains.
    With ``optimizer="muon"``: :class:`course_utils.modern.Muon` (Muon for the blocks' matrices, AdamW for the rest)."""
    if s.optimizer == "muon":
        return modern.make_muon(model, s)
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=s.lr, betas=(s.beta1, s.beta2))


@torch.no_grad()
def estimate_loss(model: MiniGPT, ids: torch.Tensor, batch_size: int, batches: int,
                  device: torch.device | str = "cpu", seed: int = 1234) -> float:
    """Mean cross-entropy (nats per token) on ``batches`` random windows of ``ids``, the same windows every call."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    T = min(model.config.block_size, len(ids) - 1)
    total = 0.0
    for _ in range(batches):
        x, y = get_batch(ids, batch_size, T, device, generator=g)
        with runtime.autocast(device):
            _, loss = model(x, y)
        total += loss.item()
    model.train(was_training)
    return total / batches


@torch.no_grad()
def evaluate(model: MiniGPT, ids: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 64,
             stride: int | None = None) -> float:
    """Cross-entropy in nats per token over all of ``ids`` (every token after the first predicted exactly once),
    comparable with the scoreboard's baselines on the same split.

    Windows of ``block_size`` tokens start every ``stride`` tokens (default: half a window). The first window scores
    all its predictions; each later one scores only its last ``stride``, the ones not scored before, so every
    prediction sees at least ``block_size - stride`` earlier tokens instead of starting from nothing at each window
    boundary. ``stride=block_size`` gives plain consecutive windows.
    """
    was_training = model.training
    model.eval()
    T = min(model.config.block_size, len(ids) - 1)
    stride = max(1, T // 2) if stride is None else stride
    if not 1 <= stride <= T:
        raise ValueError(f"stride should be between 1 and block_size={T}, got {stride}")
    n_pred = len(ids) - 1
    starts = list(range(0, n_pred - T + 1, stride))
    if starts[-1] + T < n_pred:
        starts.append(n_pred - T)                       # a last window flush with the end
    total, scored, covered = 0.0, 0, 0                  # covered: predictions 0..covered-1 are already scored
    for i in range(0, len(starts), batch_size):
        chunk = starts[i:i + batch_size]
        idx = torch.tensor(chunk)[:, None] + torch.arange(T)[None, :]
        x, y = ids[idx].to(device), ids[idx + 1].to(device)
        with runtime.autocast(device):
            logits, _ = model(x)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                              reduction="none").view(len(chunk), T)
        for row, start in enumerate(chunk):
            first_new = max(covered - start, 0)         # skip predictions an earlier window already scored
            total += nll[row, first_new:].sum().item()
            scored += T - first_new
            covered = start + T
    model.train(was_training)
    assert scored == n_pred, (scored, n_pred)
    return total / scored


def profile_step(model: MiniGPT, train_ids: torch.Tensor, settings: TrainSettings, steps: int = 20,
                 warmup: int = 3, device: torch.device | str = "cpu") -> dict[str, float]:
    """Milliseconds per training step, part by part, as ``train`` runs them: {"data", "forward", "backward",
    "clip", "optimizer", "evaluation", "total"}. "evaluation" is one evaluation of ``settings.eval_batches``
    batches shared out over the steps between two evaluations (``eval_interval`` steps, or as many as fit in
    ``eval_seconds``); 0 when the settings evaluate only at the end.

    Trains ``model`` for ``warmup + steps`` steps at the peak learning rate (the weights change: profile a copy).
    Each part is timed on its own clock (``time.perf_counter``, after ``runtime.synchronize``), so a GPU's
    queued work is charged to the part that queued it.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps should be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    dev = torch.device(device)
    model.to(dev).train()
    opt = make_optimizer(model, settings)
    for group in opt.param_groups:
        group["lr"] = settings.lr * group.get("lr_scale", 1.0)
    T = model.config.block_size
    gen = torch.Generator().manual_seed(settings.seed)
    parts = dict.fromkeys(("data", "forward", "backward", "clip", "optimizer"), 0.0)

    def timed(name: str, fn: Callable[[], object], count: bool) -> object:
        runtime.synchronize(dev)
        t0 = time.perf_counter()
        out = fn()
        runtime.synchronize(dev)
        if count:
            parts[name] += (time.perf_counter() - t0) * 1000 / steps
        return out

    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with runtime.autocast(dev, settings.cpu_bf16):
            return model(x, y)[1]

    for i in range(warmup + steps):
        count = i >= warmup
        x, y = timed("data", lambda: get_batch(train_ids, settings.batch_size, T, dev, generator=gen), count)
        loss = timed("forward", lambda x=x, y=y: forward(x, y), count)
        opt.zero_grad(set_to_none=True)
        timed("backward", loss.backward, count)
        if settings.grad_clip > 0:
            timed("clip", lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip), count)
        timed("optimizer", opt.step, count)
    evaluation = 0.0
    if settings.eval_interval or settings.eval_seconds:
        t0 = time.perf_counter()
        estimate_loss(model, train_ids, settings.batch_size, settings.eval_batches, dev)
        runtime.synchronize(dev)
        one_eval = (time.perf_counter() - t0) * 1000
        if settings.eval_interval:
            evaluation = one_eval / settings.eval_interval
        else:                               # one evaluation every eval_seconds of training steps
            evaluation = one_eval * sum(parts.values()) / (settings.eval_seconds * 1000)
    parts["evaluation"] = evaluation
    parts["total"] = sum(parts.values())
    return parts


def _gradients(net: torch.nn.Module, model: MiniGPT, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               grad_clip: float, device: torch.device, cpu_bf16: bool = False) -> torch.Tensor:
    """The part of a training step before the update: the loss of ``net`` (the model, or its DDP wrapper) on a batch
    (B, T) -> (B, T), under autocast (``runtime.autocast(device, cpu_bf16)``), its gradients, their global norm
    clipped to ``grad_clip`` (0: not clipped). Returns the loss; the caller takes the optimizer's step."""
    with runtime.autocast(device, cpu_bf16):
        _, loss = net(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    return loss


def speed_ratio(a: tuple[GPTConfig, TrainSettings], b: tuple[GPTConfig, TrainSettings], train_ids: torch.Tensor,
                rounds: int = 12, seed: int = 0, device: torch.device | str = "cpu") -> float:
    """Training tokens per second of model ``b`` over model ``a`` (each a (config, settings) pair), the two trained
    in alternation: every round trains each on about the same number of tokens (as many steps of its batch as one
    step of the larger batch), so both see the machine in the same state. A computer shared with other programs
    drifts by 10% or more within minutes, more than the difference being measured when the two run one after the
    other. Returns the median over ``rounds`` of the ratio of their seconds per token, after 2 warm-up rounds.
    Trains fresh models at the peak learning rate (the weights change; nothing is returned but the ratio)."""
    if rounds < 1:
        raise ValueError(f"rounds should be >= 1, got {rounds}")
    dev = torch.device(device)
    per_round = max(a[1].batch_size, b[1].batch_size)
    runners = []
    for cfg, st in (a, b):
        runtime.seed_everything(seed)
        model = MiniGPT(cfg).to(dev).train()
        opt = make_optimizer(model, st)
        for group in opt.param_groups:
            group["lr"] = st.lr * group.get("lr_scale", 1.0)
        runners.append((model, opt, st, max(1, per_round // st.batch_size), torch.Generator().manual_seed(seed)))

    def seconds_per_token(model: MiniGPT, opt, st: TrainSettings, steps: int, gen: torch.Generator) -> float:
        runtime.synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = get_batch(train_ids, st.batch_size, model.config.block_size, dev, generator=gen)
            _gradients(model, model, opt, x, y, st.grad_clip, dev, st.cpu_bf16)
            opt.step()
        runtime.synchronize(dev)
        return (time.perf_counter() - t0) / (steps * st.batch_size * model.config.block_size)

    ratios = []
    for i in range(rounds + 2):
        first, second = runners if i % 2 == 0 else runners[::-1]       # who goes first alternates too
        t_first, t_second = seconds_per_token(*first), seconds_per_token(*second)
        t_a, t_b = (t_first, t_second) if first is runners[0] else (t_second, t_first)
        if i >= 2:
            ratios.append(t_a / t_b)
    return statistics.median(ratios)


def expected_tokens(cfg: GPTConfig, settings: TrainSettings, train_ids: torch.Tensor, minutes: float,
                    device: torch.device | str = "cpu", steps: int = 3) -> int:
    """The training tokens a run of ``minutes`` will process, from a short :func:`profile_step` of a fresh model
    (``steps`` timed steps after one warm-up; a few seconds on a CPU). The global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        ms = profile_step(MiniGPT(cfg), train_ids, settings, steps=steps, warmup=1, device=device)["total"]
    return int(minutes * 60_000 / ms * settings.batch_size * cfg.block_size)


# ---- the loop -----------------------------------------------------------------------------------------------------

def _empty_history() -> dict[str, list[float]]:
    return {"step": [], "train": [], "lr": [], "val_step": [], "val": [], "val_time": []}


def train(model: MiniGPT, train_ids: torch.Tensor, val_ids: torch.Tensor, settings: TrainSettings | None = None,
          device: torch.device | str | None = None, tokenizer: CharTokenizer | None = None,
          checkpoint: str | Path | None = None, resume: bool = False,
          callback: Callable[[dict[str, list[float]]], None] | None = None, progress: bool = True,
          log: Callable[[str], None] | None = None, dist: distributed.Dist | None = None,
          resume_hint: str = "resume=True", **overrides) -> TrainResult:
    """Train ``model`` on ``train_ids`` (1-D token ids), evaluating on ``val_ids``. Returns a :class:`TrainResult`.

    settings / overrides: a :class:`TrainSettings`; keyword overrides such as ``minutes=1`` replace its fields.
    checkpoint: file to write at every evaluation, at the end and on interrupt (atomically).
    resume: continue from ``checkpoint`` if it exists (model, optimizer, step, time used, curves).
    callback(history): called after every evaluation (the notebook's live plot); it may raise KeyboardInterrupt.
    log: where one-line reports go (``print`` from the command line; default: nothing besides the progress bar).
    dist: this process's place in a torchrun job (:mod:`course_utils.distributed`); None or one process: as ever.
        With N processes each draws its own batches, DDP averages the gradients, only rank 0 evaluates, logs and
        writes the checkpoint, and all ranks stop at the same step.
    resume_hint: how the interrupt message tells you to continue (``--resume`` from the command line).
    """
    s = settings or TrainSettings(max_steps=overrides.pop("max_steps", None) or 100)
    s = replace(s, **overrides) if overrides else s
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    for name, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
            raise ValueError(f"{name} should be a 1-D tensor of token ids")
        if len(ids) <= model.config.block_size:
            raise ValueError(f"{name} has {len(ids)} tokens; it needs more than block_size="
                             f"{model.config.block_size}")
    opt = make_optimizer(model, s)
    step, elapsed_before, history = 0, 0.0, _empty_history()
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if filled_config(state["config"]) != model.config_dict():
            raise ValueError(f"{ckpt_path} holds a model with config {state['config']}, not "
                             f"{model.config_dict()}; use another checkpoint file or resume=False")
        model.load_state_dict(state["model"])
        if state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])
        step, elapsed_before = state["step"], state["elapsed"]
        history.update({k: list(v) for k, v in state["losses"].items()})
        if log:
            log(f"resumed from {ckpt_path} at step {step} ({elapsed_before:.0f} s trained)")
    budget_s = s.minutes * 60 if s.minutes is not None else None
    d = dist or distributed.Dist()
    net = distributed.wrap(model, d)           # the model itself for one process
    if not d.is_main:
        log, callback, progress = None, None, False
    gen = torch.Generator().manual_seed(s.seed + step + 1_000_003 * d.rank)   # each rank its own batches
    T = model.config.block_size

    def save() -> None:
        if ckpt_path is not None and d.is_main:
            save_checkpoint(ckpt_path, model, opt, tokenizer, step=step, elapsed=elapsed(), losses=history,
                            extra={"settings": {k: v for k, v in asdict(s).items() if v is not None}})

    def progress_fraction(now: float | None = None) -> float:
        fracs = [0.0]
        if s.max_steps is not None:
            fracs.append((step - s.warmup_steps) / max(1, s.max_steps - s.warmup_steps))
        if budget_s is not None:
            fracs.append((elapsed() if now is None else now) / budget_s)
        return max(fracs)

    def done() -> bool:
        return ((s.max_steps is not None and step >= s.max_steps)
                or (budget_s is not None and elapsed() >= budget_s))

    def run_eval() -> None:
        if not d.is_main:
            return
        loss = estimate_loss(model, val_ids, s.batch_size, s.eval_batches, dev)
        history["val_step"].append(step)
        history["val"].append(loss)
        history["val_time"].append(elapsed())
        if log:
            log(f"step {step:6d} | {elapsed():6.0f} s | train loss {history['train'][-1]:.4f} | "
                f"val loss {loss:.4f} nats/char ({loss / math.log(2):.3f} bits)")
        if callback is not None:
            callback(history)

    from tqdm.auto import tqdm

    total = s.max_steps if budget_s is None else int(round(budget_s))
    bar = tqdm(total=total, initial=min(step, total) if budget_s is None else min(int(elapsed_before), total),
               unit="step" if budget_s is None else "s", disable=not progress, leave=True,
               desc="training", dynamic_ncols=True)
    now_s = modern.clock(s)
    start = now_s()

    def elapsed() -> float:
        return elapsed_before + now_s() - start

    model.train()
    tokens, train_time, interrupted, updating = 0, 0.0, False, False
    last_eval_t, last_eval_step, shown = elapsed(), step, elapsed_before
    try:
        while True:
            now = None
            if d.enabled:            # one collective: every rank stops at the same step, on the same clock
                now, stop = d.agree(elapsed(), done())
                if stop:
                    break
            elif done():
                break
            t0 = time.perf_counter()
            lr = lr_at(step, progress_fraction(now), s)
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            x, y = get_batch(train_ids, s.batch_size, T, dev, generator=gen)
            loss = _gradients(net, model, opt, x, y, s.grad_clip, dev, s.cpu_bf16)
            updating = True
            opt.step()
            step += 1
            updating = False
            loss_value = loss.item()
            history["step"].append(step)
            history["train"].append(loss_value)
            history["lr"].append(lr)
            tokens += x.numel() * d.world_size
            train_time += time.perf_counter() - t0
            if budget_s is None:
                bar.update(1)
            else:
                now = min(int(elapsed()), total)
                bar.update(now - int(shown))
                shown = now
            if step % 10 == 0 or step == 1:
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.1e}", refresh=False)
            due = ((s.eval_interval is not None and step - last_eval_step >= s.eval_interval)
                   or (s.eval_seconds is not None and elapsed() - last_eval_t >= s.eval_seconds))
            if due and not done():
                run_eval()
                save()
                last_eval_t, last_eval_step = elapsed(), step
    except KeyboardInterrupt:
        interrupted = True
        if updating:                 # interrupted inside the update: the weights may be half-updated
            msg = f"Interrupted during an update at step {step}: the last checkpoint is kept as it was."
        else:
            save()
            msg = f"Interrupted at step {step}: the model keeps its weights"
            msg += f" and the checkpoint {ckpt_path} holds them." if ckpt_path else "."
        if ckpt_path is not None:
            msg += f" Run again with {resume_hint} to continue."
        if d.is_main:
            print(msg, flush=True)
    finally:
        bar.close()
    if not interrupted:
        if not history["val_step"] or history["val_step"][-1] != step:
            run_eval()
        save()
    tps = tokens / train_time if train_time > 0 else 0.0
    return TrainResult(model=model, step=step, elapsed=elapsed(), tokens_per_second=tps,
                       interrupted=interrupted, checkpoint=str(ckpt_path) if ckpt_path else None, history=history)


# ---- pictures of a run --------------------------------------------------------------------------------------------

def plot_losses(history: dict[str, list[float]], ax=None, baselines: dict[str, float] | None = None,
                title: str = "Training curves", smooth: int = 20):
    """Training loss (moving average of ``smooth`` steps) and validation loss against the step, with horizontal
    lines for ``baselines`` ({name: loss in nats}); returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    ax.clear()
    tr = history.get("train", [])
    if tr:
        k = max(1, min(smooth, len(tr) // 5 or 1))
        avg = torch.tensor(tr).unfold(0, k, 1).mean(1).tolist() if len(tr) >= k else tr
        ax.plot(history["step"][k - 1:] if len(tr) >= k else history["step"], avg, lw=1,
                label=f"train (mean of {k} steps)")
    if history.get("val"):
        ax.plot(history["val_step"], history["val"], "o-", ms=3, label="validation")
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls=":", color=f"C{i + 3}", label=f"{name}: {value:.2f}")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.legend(loc="upper right")
    return ax


class LivePlot:
    """A loss plot that redraws in place while training runs: pass it as ``train(..., callback=LivePlot())``.

    In Jupyter it updates one output (``display_id``); elsewhere it only keeps the figure.
    """

    def __init__(self, baselines: dict[str, float] | None = None, title: str = "Training curves (live)"):
        import matplotlib.pyplot as plt

        self.baselines, self.title = baselines, title
        self.fig, self.ax = plt.subplots(figsize=(8, 4))
        plt.close(self.fig)                       # shown through the display handle only, not again at the end
        self.handle = None

    def __call__(self, history: dict[str, list[float]]) -> None:
        plot_losses(history, self.ax, self.baselines, self.title)
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        if self.handle is None:
            self.handle = display(self.fig, display_id=True)
        else:
            self.handle.update(self.fig)


# ---- command line -----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.train",
                                description="Train the course's MiniGPT on a UTF-8 text file, character level.")
    p.add_argument("--text", required=True, help="a UTF-8 text file")
    p.add_argument("--minutes", type=float, required=True, help="training time budget in minutes")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--out", default="checkpoints/mini_gpt.pt", help="checkpoint file (written atomically)")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--val-fraction", type=float, default=0.1, help="the last part of the text kept for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--recipe", choices=("gpt2", "modern"), default="gpt2",
                   help="gpt2: notebook 08's model and training (default). modern: notebook 15's recipe (RoPE, "
                        "RMSNorm, ReLU^2, QK-norm, untied output, zero-init, grouped-query attention, no biases, "
                        "warm-up-stable-decay, Muon), dropout and weight decay set by tokens per parameter (none "
                        "when the budget reads the text fewer than 10 times), on a CPU the batch by the budget and "
                        "Muon's momentum tuned for a short run, and the "
                        "checkpoint with the best validation loss kept")
    args = p.parse_args(argv)
    try:
        d = distributed.from_env()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    finished = False
    try:
        code = _run(args, d)
        finished = True
        return code
    except CommandError as err:            # bad input: one line from rank 0, every rank exits with status 2
        if d.is_main:
            print(f"error: {err}", file=sys.stderr, flush=True)
        else:
            time.sleep(3)      # let rank 0 print and exit first: torchrun then stops the others (no lost message)
        return 2
    except (torch.distributed.DistError, RuntimeError) as err:
        if not d.enabled:
            raise
        # another rank died or was killed: this one stops too
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        print(f"error: rank {d.rank} lost the other processes of the job ({first}); the last checkpoint "
              f"{args.out} is kept as it was", file=sys.stderr, flush=True)
        return 1
    finally:
        distributed.cleanup(wait_for_others=finished)


class CommandError(Exception):
    """Bad input to the command line: printed as one line ``error: ...`` (exit status 2), no traceback."""


def _read_text(path: Path) -> str:
    if not path.exists():
        raise CommandError(f"no such file: {path}")
    if not path.is_file():
        raise CommandError(f"{path} is not a file; --text takes a UTF-8 text file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandError(f"{path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at position {err.start}); "
                           f"save it as UTF-8 and try again") from None


def _check_out(out: Path) -> None:
    """--out must name a file in a directory that exists or can be created, and that this user may write to."""
    if out.is_dir():
        raise CommandError(f"--out {out} is a directory; give a file name for the checkpoint, e.g. {out / 'ckpt.pt'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise CommandError(f"--out {out}: cannot create the directory {out.parent} ({why}); give a path in a "
                           f"directory you can write to") from None
    if not os.access(out.parent, os.W_OK):
        raise CommandError(f"--out {out}: the directory {out.parent} is not writable; give a path in a directory "
                           f"you can write to")


def _saved_dropout(out: Path) -> float | None:
    """The dropout of the model saved at ``out``; None when there is no readable checkpoint there (then
    :func:`_check_resume` says what is wrong with it)."""
    if not out.exists():
        return None
    try:
        return float(filled_config(load_checkpoint(out)["config"])["dropout"])
    except (ValueError, RuntimeError, OSError, KeyError, TypeError):
        return None


def _check_resume(out: Path, tok: CharTokenizer, model: MiniGPT, minutes: float) -> None:
    """--resume with a checkpoint that cannot continue on this text and budget: a clear error before training."""
    try:
        state = load_checkpoint(out)
    except (ValueError, RuntimeError, OSError) as err:
        raise CommandError(f"--resume: cannot read {out}: {str(err).splitlines()[0]}") from None
    fix = "give another --out, or leave out --resume to start afresh"
    if state.get("vocab") is not None and list(state["vocab"]) != list(tok.itos):
        raise CommandError(f"--resume: {out} was trained on a text with another vocabulary "
                           f"({len(state['vocab'])} characters, this text has {tok.vocab_size}); {fix}")
    saved = filled_config(state["config"])
    if saved != model.config_dict():
        saved_modern, here_modern = is_modern(SimpleNamespace(**saved)), is_modern(model.config)
        if saved_modern and not here_modern:
            raise CommandError(f"--resume: {out} was trained with --recipe modern; add --recipe modern to continue "
                               f"it, or {fix}")
        if here_modern and not saved_modern:
            raise CommandError(f"--resume: {out} was trained with --recipe gpt2 (the default); leave out --recipe "
                               f"modern to continue it, or {fix}")
        diff = ", ".join(f"{k}={saved.get(k)} (here {v})" for k, v in model.config_dict().items()
                         if saved.get(k) != v)
        raise CommandError(f"--resume: {out} holds a model of another size: {diff}; {fix}")
    if state["elapsed"] >= minutes * 60:
        raise CommandError(f"--resume: {out} has already trained for {state['elapsed']:.0f} s, the whole budget "
                           f"of --minutes {minutes:g}; the budget counts the time already trained, so give a "
                           f"larger --minutes to train on")


def _run(args: argparse.Namespace, d: distributed.Dist) -> int:
    say = print if d.is_main else (lambda *a, **k: None)
    text = _read_text(Path(args.text))
    if len(text) < 64:
        raise CommandError(f"{args.text} holds only {len(text)} characters; give it at least a few hundred")
    if not math.isfinite(args.minutes) or args.minutes <= 0:
        raise CommandError(f"--minutes should be a number of minutes > 0, got {args.minutes:g}")
    if not 0 < args.val_fraction < 1:
        raise CommandError(f"--val-fraction should be between 0 and 1, got {args.val_fraction:g}")
    if args.seed < 0:
        raise CommandError(f"--seed should be >= 0, got {args.seed}")
    try:
        dev = runtime.device(args.device, verbose=d.is_main)
    except (ValueError, RuntimeError) as err:
        raise CommandError(str(err)) from None
    _check_out(Path(args.out))
    runtime.seed_everything(args.seed)
    tok, train_ids, val_ids = scoreboard.char_data(text, args.val_fraction)
    budget = None
    if args.recipe == "modern":      # regularised for the text and for the passes the budget makes over it
        cfg, st = modern_preset(tok.vocab_size, len(train_ids), dev)
        saved_dropout = _saved_dropout(Path(args.out)) if args.resume else None
        if saved_dropout is not None:       # a resumed run goes on with the model it saved, dropout included
            cfg = replace(cfg, dropout=saved_dropout)
        else:
            block = max(8, min(cfg.block_size, len(val_ids) // 2, len(train_ids) // 2))
            world = int(os.environ.get("WORLD_SIZE", "1"))   # torchrun's processes each train on their own batch
            budget = world * expected_tokens(*probe(replace(cfg, block_size=block), st, dev), train_ids,
                                             args.minutes, dev)
            cfg, st = modern_preset(tok.vocab_size, len(train_ids), dev, budget_tokens=budget, world_size=world)
    else:
        cfg, st = preset(tok.vocab_size, dev)
    block = max(8, min(cfg.block_size, len(val_ids) // 2, len(train_ids) // 2))
    cfg = replace(cfg, block_size=block)
    st = replace(st, minutes=args.minutes, eval_seconds=max(5.0, min(st.eval_seconds or 30, args.minutes * 60 / 6)),
                 seed=args.seed)
    model = MiniGPT(cfg)
    if args.resume and Path(args.out).exists():
        _check_resume(Path(args.out), tok, model, args.minutes)
    d = distributed.setup(dev)                 # joins the torchrun job; nothing for one process
    dev = distributed.device_for(d, dev)
    say(f"{len(text):,} characters, vocabulary {tok.vocab_size}, {len(train_ids):,} train / {len(val_ids):,} "
        f"validation; model {model.num_params():,} parameters (d_model={cfg.d_model}, n_layers={cfg.n_layers}, "
        f"n_heads={cfg.n_heads}, block_size={cfg.block_size})", flush=True)
    if d.enabled:
        say(f"{d.world_size} processes ({distributed.backend(dev)}): effective batch {d.world_size} x "
            f"{st.batch_size} = {d.world_size * st.batch_size} windows per step", flush=True)
    keeper = None
    if args.recipe == "modern":
        keeper = KeepBest(model)
        passes = (f"about {budget / len(train_ids):.1f} passes over them in {args.minutes:g} min" if budget
                  else "dropout as the checkpoint was trained")
        say(f"recipe modern: {len(train_ids) / model.num_params():.1f} training tokens per parameter, {passes} -> "
            f"dropout {cfg.dropout}, weight decay {st.weight_decay}, batch {st.batch_size}, Muon's momentum "
            f"{st.muon_momentum}; {runtime.precision(dev, st.cpu_bf16)}", flush=True)
    res = train(model, train_ids, val_ids, st, device=dev, tokenizer=tok, checkpoint=args.out,
                resume=args.resume, progress=not args.no_progress, log=lambda m: print(m, flush=True), dist=d,
                resume_hint="--resume", callback=keeper)
    if d.is_main and not res.interrupted:
        if keeper is not None and res.history["val"] and keeper.best < res.history["val"][-1]:
            best, at = keeper.restore()
            save_checkpoint(args.out, res.model, None, tok, step=at, elapsed=res.elapsed, losses=res.history,
                            extra={"best_of_run": True})
            print(f"kept the best weights: step {at}, validation estimate {best:.4f} nats/char (the last step had "
                  f"{res.history['val'][-1]:.4f}); {args.out} holds them", flush=True)
        val = evaluate(res.model, val_ids, dev)
        print(f"final validation loss: {val:.4f} nats/char = {val / math.log(2):.4f} bits/char "
              f"(step {res.step}, {res.tokens_per_second:,.0f} tokens/s, checkpoint {args.out})", flush=True)
    return 130 if res.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
