"""Scaling laws measured on the course's own models (notebook 12).

A *sweep* trains a grid of MiniGPTs of several sizes N (non-embedding parameters) at several compute budgets
C = 6 N D (D = training tokens, here characters), each run budgeted by its number of tokens, so the result does
not depend on how busy the machine is. Every run's validation loss (nats per character, on a fixed slice of the
scoreboard's validation split) goes into a CSV. Then:

    isoflop_minima(runs)          the loss-optimal N for each budget (a parabola in log N through each IsoFLOP curve)
    fit_power_law(x, y)           y = k x^a by least squares in log-log space (N_opt ~ C^a, D_opt ~ C^b)
    fit_loss_law(N, D, L)         L(N, D) = E + A / N^alpha + B / D^beta, Huber loss on log L (as Chinchilla did)
    bootstrap_loss_law(...)       the same fit on resampled runs: uncertainty of the exponents
    compute_optimal(C, law)       N_opt and D_opt that minimise L(N, D) subject to 6 N D = C

Command line (writes ``data/scaling_runs.csv``, then fits, predicts a larger run, trains it and compares)::

    python -m course_utils.scaling --minutes M [--threads 1] [--fresh]

``--minutes`` picks the grid: the largest ladder of budgets whose estimated time fits (see
:func:`grid_for_minutes`). Runs already in the CSV with the same settings are reused unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import runtime
from .model import GPTConfig, MiniGPT

REPO = Path(__file__).resolve().parent.parent
RUNS_CSV = REPO / "data" / "scaling_runs.csv"

# ---- published laws -----------------------------------------------------------------------------------------------

# Kaplan et al. 2020 (nats per BPE token of WebText2; N without embeddings): L(N) = (N_c / N)^alpha_N, ...
KAPLAN = {"alpha_N": 0.076, "N_c": 8.8e13, "alpha_D": 0.095, "D_c": 5.4e13}


@dataclass(frozen=True)
class LossLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (nats). Chinchilla's published fit is :data:`CHINCHILLA`."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __post_init__(self):
        for name, v in asdict(self).items():
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"LossLaw.{name} should be a finite number, got {v!r}")
        if self.A <= 0 or self.B <= 0 or self.alpha <= 0 or self.beta <= 0 or self.E < 0:
            raise ValueError(f"LossLaw needs E >= 0 and A, B, alpha, beta > 0, got {self}")

    def __call__(self, N, D):
        """The loss at N parameters and D tokens (numbers or arrays of the same shape)."""
        N, D = _positive(N, "N"), _positive(D, "D")
        out = self.E + self.A / N ** self.alpha + self.B / D ** self.beta
        return float(out) if out.ndim == 0 else out


# Hoffmann et al. 2022, approach 3 (nats per token of MassiveText).
CHINCHILLA = LossLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def _positive(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} should hold positive, finite numbers, got {x!r:.80}")
    return a


def kaplan_loss_N(N):
    """Kaplan's L(N) = (N_c / N)^0.076: models trained to convergence on plenty of data (nats per token)."""
    N = _positive(N, "N")
    out = (KAPLAN["N_c"] / N) ** KAPLAN["alpha_N"]
    return float(out) if out.ndim == 0 else out


def kaplan_loss_D(D):
    """Kaplan's L(D) = (D_c / D)^0.095: a large model stopped early on D tokens (nats per token)."""
    D = _positive(D, "D")
    out = (KAPLAN["D_c"] / D) ** KAPLAN["alpha_D"]
    return float(out) if out.ndim == 0 else out


def kaplan_loss(N, D):
    """Kaplan's joint law L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D (their equation 1.5)."""
    N, D = _positive(N, "N"), _positive(D, "D")
    k = KAPLAN
    out = ((k["N_c"] / N) ** (k["alpha_N"] / k["alpha_D"]) + k["D_c"] / D) ** k["alpha_D"]
    return float(out) if out.ndim == 0 else out


def mixed_claim_loss(N, D):
    """The popular mixed form (Nc/N)^alpha_N + (Dc/D)^alpha_D with Kaplan's constants: a sum of Kaplan's two
    one-variable laws, which is neither Kaplan's joint law nor Chinchilla's (popular-claims row 16)."""
    return kaplan_loss_N(N) + kaplan_loss_D(D)


# ---- sizes and compute --------------------------------------------------------------------------------------------

def training_flops(N, D):
    """C = 6 N D: 2 N FLOPs per token forward, 4 N backward (multiply-adds count as 2 FLOPs)."""
    N, D = _positive(N, "N"), _positive(D, "D")
    out = 6.0 * N * D
    return float(out) if out.ndim == 0 else out


def non_embedding_params(model: MiniGPT) -> int:
    """N as Kaplan and Chinchilla count it: every parameter except the token and position embeddings
    (the output layer is tied to the token embedding, so it adds nothing). For a MiniGPT of width d and L
    blocks: L (12 d^2 + 13 d) + 2 d (the final LayerNorm)."""
    if not isinstance(model, MiniGPT):
        raise TypeError(f"expected a MiniGPT, got {type(model).__name__}")
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(("tok_emb.", "pos_emb.")))


@dataclass(frozen=True)
class Shape:
    """A model shape of the sweep: width, depth, heads."""

    d_model: int
    n_layers: int
    n_heads: int

    def __post_init__(self):
        if min(self.d_model, self.n_layers, self.n_heads) < 1:
            raise ValueError(f"d_model, n_layers and n_heads should be >= 1, got {self}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} does not divide d_model={self.d_model}")

    @property
    def N(self) -> int:
        """Non-embedding parameters (equal to :func:`non_embedding_params` of the built model)."""
        d = self.d_model
        return self.n_layers * (12 * d * d + 13 * d) + 2 * d

    def config(self, vocab_size: int, block_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=block_size, d_model=self.d_model,
                         n_heads=self.n_heads, n_layers=self.n_layers)


# From about 2K to about 2M non-embedding parameters, each about 2.2 times the one before.
SHAPES = (Shape(8, 2, 2), Shape(12, 2, 2), Shape(16, 3, 2), Shape(24, 3, 2), Shape(32, 3, 4), Shape(48, 3, 4),
          Shape(64, 4, 4), Shape(96, 4, 4),
          Shape(128, 5, 4), Shape(160, 6, 5))
BUDGET_LADDER = (3e10, 1e11, 3e11, 1e12, 3e12, 1e13)


@dataclass(frozen=True)
class SweepSettings:
    """How every run of a sweep trains: the same batch, context and schedule; lr shrinks with width."""

    batch_size: int = 64
    block_size: int = 64
    min_steps: int = 50            # a run shorter than this is not a fair measurement: left out of the grid
    tokens_per_param: float = 200  # per budget, the grid centres on N* = sqrt(C / (6 tokens_per_param)) ...
    window: float = 6.0            # ... and takes the sizes within [N* / window, N* window]
    val_chars: int = 16_384        # validation loss on this many characters at the start of the validation split
    seed: int = 0

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.block_size


def learning_rate(d_model: int) -> float:
    """Peak learning rate for width d: 6e-3 at d = 64, times sqrt(64 / d), at most 1.2e-2."""
    if d_model < 1:
        raise ValueError(f"d_model should be >= 1, got {d_model}")
    return min(1.2e-2, 6e-3 * math.sqrt(64 / d_model))


@dataclass(frozen=True)
class Run:
    """One planned run: a shape trained on D tokens (a whole number of steps) for the nominal budget C."""

    shape: Shape
    budget: float
    steps: int
    tokens: int

    @property
    def N(self) -> int:
        return self.shape.N

    @property
    def flops(self) -> float:
        return 6.0 * self.N * self.tokens


def plan_runs(budgets: Sequence[float], shapes: Sequence[Shape] = SHAPES,
              settings: SweepSettings | None = None) -> list[Run]:
    """The grid: for each budget C, every shape within the window around N* = sqrt(C / (6 k)) (k =
    ``tokens_per_param``: 200 characters per parameter by default, where a first pilot sweep of the course found
    its minima; Chinchilla's rule would be 20 tokens) that gets at least ``min_steps`` steps, with D = C / (6 N)
    rounded to whole steps."""
    s = settings or SweepSettings()
    budgets = list(budgets)
    if not budgets:
        raise ValueError("give at least one compute budget")
    _positive(budgets, "budgets")
    if not shapes:
        raise ValueError("give at least one model shape")
    runs = []
    for C in sorted(budgets):
        n_star = math.sqrt(C / (6 * s.tokens_per_param))
        for sh in sorted(shapes, key=lambda x: x.N):
            if not n_star / s.window <= sh.N <= n_star * s.window:
                continue
            steps = round(C / (6 * sh.N) / s.tokens_per_step)
            if steps >= s.min_steps:
                runs.append(Run(sh, float(C), steps, steps * s.tokens_per_step))
    return runs


# Seconds per step ~ OVERHEAD_S + 6 N tokens_per_step / FLOPS: measured on this project's 2-core machine with one
# thread while other jobs were running (load average about 8). It is only an estimate: the stored sweep ran under a
# load average of about 23 and took about 2.5 times as long as estimated; an idle machine is faster than estimated.
COST_OVERHEAD_S = 0.04
COST_FLOPS = 1.5e10


def estimate_seconds(runs: Sequence[Run], settings: SweepSettings | None = None,
                     overhead_s: float = COST_OVERHEAD_S, flops_per_s: float = COST_FLOPS) -> float:
    """Rough wall time of ``runs`` (training only) from a per-step overhead and a FLOP rate."""
    s = settings or SweepSettings()
    if overhead_s < 0 or flops_per_s <= 0:
        raise ValueError("overhead_s should be >= 0 and flops_per_s > 0")
    return sum(r.steps * (overhead_s + 6 * r.N * s.tokens_per_step / flops_per_s) for r in runs)


def grid_for_minutes(minutes: float, settings: SweepSettings | None = None,
                     ladder: Sequence[float] = BUDGET_LADDER) -> list[Run]:
    """The grid a time budget affords: budgets from the bottom of ``ladder`` up, as many as the estimate allows
    (at least the first one)."""
    if not isinstance(minutes, int | float) or not minutes > 0:
        raise ValueError(f"minutes should be a positive number, got {minutes!r}")
    chosen: list[float] = []
    for C in ladder:
        trial = plan_runs(chosen + [C], settings=settings)
        if chosen and estimate_seconds(trial, settings) > minutes * 60:
            break
        chosen.append(C)
    return plan_runs(chosen, settings=settings)


# ---- running --------------------------------------------------------------------------------------------------

FIELDS = ["kind", "d_model", "n_layers", "n_heads", "N", "N_total", "budget", "D", "C", "steps", "batch_size",
          "block_size", "lr", "seed", "val_loss", "train_loss", "predicted_loss", "seconds", "tokens_per_s",
          "threads", "machine", "finished_utc"]


def machine_description() -> str:
    """One line: processor, cores, torch threads, torch version, and the 1-minute load average where known."""
    try:
        load = f", load {os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        load = ""
    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}{load}")


def train_run(run: Run, train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int,
              settings: SweepSettings | None = None, device: torch.device | str = "cpu",
              kind: str = "grid", predicted_loss: float | None = None) -> dict:
    """Train one run for exactly ``run.steps`` steps and return its CSV row (validation loss in nats/char)."""
    from .train import TrainSettings, evaluate, train

    s = settings or SweepSettings()
    if len(val_ids) <= s.block_size + 1 or len(train_ids) <= s.block_size + 1:
        raise ValueError("train_ids and val_ids need more than block_size + 1 tokens each")
    runtime.seed_everything(s.seed)
    model = MiniGPT(run.shape.config(vocab_size, s.block_size))
    lr = learning_rate(run.shape.d_model)
    ts = TrainSettings(max_steps=run.steps, batch_size=s.batch_size, lr=lr,
                       warmup_steps=max(5, min(50, run.steps // 10)),
                       weight_decay=0.1, beta2=0.95, eval_interval=None, eval_batches=1, seed=s.seed)
    t0 = time.perf_counter()
    res = train(model, train_ids, val_ids, ts, device=device, progress=False)
    val = evaluate(res.model, val_ids[: s.val_chars], device)
    seconds = time.perf_counter() - t0
    tail = res.history["train"][-20:]
    return {"kind": kind, "d_model": run.shape.d_model, "n_layers": run.shape.n_layers, "n_heads": run.shape.n_heads,
            "N": non_embedding_params(model), "N_total": model.num_params(), "budget": run.budget, "D": run.tokens,
            "C": run.flops, "steps": run.steps, "batch_size": s.batch_size, "block_size": s.block_size, "lr": lr,
            "seed": s.seed, "val_loss": round(val, 5), "train_loss": round(sum(tail) / len(tail), 5),
            "predicted_loss": "" if predicted_loss is None else round(predicted_loss, 5),
            "seconds": round(seconds, 2), "tokens_per_s": round(res.tokens_per_second),
            "threads": torch.get_num_threads(), "machine": machine_description(),
            "finished_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M")}


def _key(row: dict) -> tuple:
    return (row["kind"], int(row["d_model"]), int(row["n_layers"]), int(row["n_heads"]), int(row["D"]),
            int(row["batch_size"]), int(row["block_size"]), round(float(row["lr"]), 8), int(row["seed"]))


def read_runs(path: str | Path = RUNS_CSV):
    """The runs of a sweep CSV as a pandas DataFrame (numbers as numbers)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m course_utils.scaling --minutes 20` first")
    df = pd.read_csv(path)
    missing = [f for f in ("N", "D", "C", "budget", "val_loss") if f not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a sweep CSV: it lacks the columns {missing}")
    return df


def append_row(path: str | Path, row: dict) -> None:
    """Append one run's row (the keys of :data:`FIELDS`) to a sweep CSV, writing the header if the file is new."""
    path = Path(path)
    if set(row) != set(FIELDS):
        raise ValueError(f"a sweep row needs exactly the fields {FIELDS}; got {sorted(row)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def sweep(runs: Sequence[Run], csv_path: str | Path | None = RUNS_CSV, settings: SweepSettings | None = None,
          device: torch.device | str = "cpu", reuse: bool = True, data=None,
          log: Callable[[str], None] | None = print) -> list[dict]:
    """Train every run (smallest budget first) and append its row to ``csv_path`` as soon as it ends.

    reuse: a run whose settings already have a row in the CSV is not trained again (its stored row is returned).
    data: (vocab_size, train_ids, val_ids); default: the scoreboard's Wikipedia split.
    """
    s = settings or SweepSettings()
    if not runs:
        raise ValueError("no runs to train: the grid is empty")
    if data is None:
        from .scoreboard import wiki_char_data

        tok, train_ids, val_ids = wiki_char_data()
        data = (tok.vocab_size, train_ids, val_ids)
    vocab_size, train_ids, val_ids = data
    path = Path(csv_path) if csv_path is not None else None
    done = {}
    if reuse and path is not None and path.exists():
        with path.open() as f:
            done = {_key(r): r for r in csv.DictReader(f)}
    rows = []
    for i, run in enumerate(runs):
        key = ("grid", run.shape.d_model, run.shape.n_layers, run.shape.n_heads, run.tokens, s.batch_size,
               s.block_size, round(learning_rate(run.shape.d_model), 8), s.seed)
        if key in done:
            rows.append(done[key])
            if log:
                log(f"[{i + 1}/{len(runs)}] C={run.budget:.0e} N={run.N:,}: reused from {path.name}")
            continue
        row = train_run(run, train_ids, val_ids, vocab_size, s, device)
        if path is not None:
            append_row(path, row)
        rows.append(row)
        if log:
            log(f"[{i + 1}/{len(runs)}] C={run.budget:.0e} N={run.N:>9,} D={run.tokens:>10,} "
                f"({run.tokens / run.N:7.1f} tokens/param): val loss {row['val_loss']:.4f} nats/char "
                f"in {row['seconds']:.0f} s")
    return rows


# ---- fitting --------------------------------------------------------------------------------------------------

def fit_power_law(x, y) -> tuple[float, float]:
    """Least squares in log-log space: y = k x^a. Returns (k, a). Needs at least two distinct positive x."""
    x, y = _positive(x, "x"), _positive(y, "y")
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y should be 1-D of the same length, got shapes {x.shape} and {y.shape}")
    if len(np.unique(x)) < 2:
        raise ValueError("a power law needs at least two different x values")
    a, logk = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(logk)), float(a)


def isoflop_minima(runs, budget_col: str = "budget"):
    """For each budget: a parabola of loss against log N through its runs; its vertex is the loss-optimal N.

    Returns a DataFrame with columns budget, C (6 N D at the vertex = the budget), N_opt, D_opt, L_min, runs,
    interior (False when the vertex lies outside the sizes tried, or the parabola opens downwards: then N_opt is
    the best run's N and should not be trusted). Budgets with fewer than 3 runs are skipped.
    """
    import pandas as pd

    df = _as_frame(runs)
    out = []
    for C, g in df.groupby(budget_col):
        if len(g) < 3:
            continue
        x, y = np.log(g["N"].to_numpy(float)), g["val_loss"].to_numpy(float)
        a, b, c = np.polyfit(x, y, 2)
        interior = a > 0 and x.min() <= -b / (2 * a) <= x.max()
        xv = -b / (2 * a) if interior else x[np.argmin(y)]
        n_opt = float(np.exp(xv))
        out.append({"budget": float(C), "N_opt": n_opt, "D_opt": float(C) / (6 * n_opt),
                    "L_min": float(np.polyval([a, b, c], xv)) if interior else float(y.min()),
                    "runs": len(g), "interior": bool(interior)})
    if not out:
        raise ValueError("no budget has 3 or more runs: an IsoFLOP minimum needs at least 3 sizes per budget")
    return pd.DataFrame(out)


def _as_frame(runs):
    import pandas as pd

    df = runs if isinstance(runs, pd.DataFrame) else pd.DataFrame(list(runs))
    for col in ("N", "D", "val_loss"):
        if col not in df.columns:
            raise ValueError(f"runs need a column {col!r}; got {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("no runs given")
    if "budget" not in df.columns:
        df = df.assign(budget=6.0 * df["N"] * df["D"])
    return df.astype({"N": float, "D": float, "val_loss": float})


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.abs(r)
    quad = a <= delta
    value = np.where(quad, 0.5 * r * r, delta * (a - 0.5 * delta))
    grad = np.where(quad, r, delta * np.sign(r))
    return value, grad


def _law_objective(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float):
    a, b, e, alpha, beta = theta
    t = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])      # (3, n)
    m = t.max(axis=0)
    w = np.exp(t - m)
    lse = m + np.log(w.sum(axis=0))                                               # log(A/N^a + B/D^b + E)
    p = w / w.sum(axis=0)                                                         # softmax over the 3 terms
    value, dr = _huber(lse - logL, delta)
    grad = np.array([(dr * p[0]).sum(), (dr * p[1]).sum(), (dr * p[2]).sum(),
                     (dr * p[0] * -logN).sum(), (dr * p[1] * -logD).sum()])
    return value.sum(), grad


def fit_loss_law(N, D, L, delta: float = 1e-3, starts: Sequence[Sequence[float]] | None = None,
                 n_best: int = 6) -> LossLaw:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta as Chinchilla did: minimise the Huber loss (delta = 1e-3) between
    log L and log(A/N^alpha + B/D^beta + E), with L-BFGS from a grid of starting points; keep the best.

    The parameters are fitted as a = log A, b = log B, e = log E (so all stay positive). The objective is evaluated
    at every point of the grid (243 points, or ``starts``: a list of (a, b, e, alpha, beta)) and L-BFGS runs from the
    ``n_best`` best of them (Chinchilla ran it from every grid point; the few best give the same answer faster).
    """
    from scipy.optimize import minimize

    N, D, L = _positive(N, "N"), _positive(D, "D"), _positive(L, "L")
    if not (N.shape == D.shape == L.shape) or N.ndim != 1:
        raise ValueError(f"N, D and L should be 1-D of the same length, got {N.shape}, {D.shape}, {L.shape}")
    if len(N) < 5:
        raise ValueError(f"fitting 5 parameters needs at least 5 runs, got {len(N)}")
    if len(np.unique(N)) < 2 or len(np.unique(D)) < 2:
        raise ValueError("the runs need at least two different N and two different D")
    if delta <= 0:
        raise ValueError(f"delta should be > 0, got {delta}")
    if n_best < 1:
        raise ValueError(f"n_best should be >= 1, got {n_best}")
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    if starts is None:
        starts = [(a, b, e, al, be) for a in (0.0, 5.0, 10.0) for b in (0.0, 5.0, 10.0)
                  for e in (-1.0, 0.0, 0.5) for al in (0.2, 0.5, 1.0) for be in (0.2, 0.5, 1.0)]
    starts = sorted((np.asarray(x0, float) for x0 in starts),
                    key=lambda x0: _law_objective(x0, logN, logD, logL, delta)[0])[:n_best]
    best = None
    bounds = [(-20, 40), (-20, 40), (-10, 3), (1e-3, 3.0), (1e-3, 3.0)]
    for x0 in starts:
        r = minimize(_law_objective, x0, args=(logN, logD, logL, delta), jac=True, method="L-BFGS-B",
                     bounds=bounds)
        if best is None or r.fun < best.fun:
            best = r
    a, b, e, alpha, beta = best.x
    return LossLaw(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha),
                   beta=float(beta))


def compute_optimal(C, law: LossLaw) -> tuple:
    """(N_opt, D_opt) minimising law(N, D) subject to 6 N D = C:
    N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6)^(alpha/(alpha+beta)) / G,
    G = (alpha A / (beta B))^(1/(alpha+beta))."""
    if not isinstance(law, LossLaw):
        raise TypeError(f"law should be a LossLaw, got {type(law).__name__}")
    C = _positive(C, "C")
    s = law.alpha + law.beta
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / s)
    n = G * (C / 6) ** (law.beta / s)
    d = (C / 6) ** (law.alpha / s) / G
    return (float(n), float(d)) if n.ndim == 0 else (n, d)


def bootstrap_loss_law(N, D, L, n_boot: int = 100, seed: int = 0, C_ref: float = 1e12,
                       delta: float = 1e-3) -> dict[str, np.ndarray]:
    """Refit the law on ``n_boot`` resamples of the runs (drawn with replacement). Each refit starts from the
    full-data fit and a few grid points. Returns arrays 'E', 'A', 'B', 'alpha', 'beta', 'a' (= beta / (alpha +
    beta), the exponent of N_opt ~ C^a) and 'tokens_per_param' (D_opt / N_opt at C_ref), one entry per refit."""
    N, D, L = _positive(N, "N"), _positive(D, "D"), _positive(L, "L")
    if n_boot < 2:
        raise ValueError(f"n_boot should be >= 2, got {n_boot}")
    full = fit_loss_law(N, D, L, delta)
    x_full = (math.log(full.A), math.log(full.B), math.log(full.E), full.alpha, full.beta)
    starts = [x_full, (5.0, 5.0, 0.0, 0.5, 0.5), (10.0, 10.0, -1.0, 1.0, 1.0), (0.0, 0.0, 0.5, 0.2, 0.2)]
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"E": [], "A": [], "B": [], "alpha": [], "beta": [], "a": [],
                                   "tokens_per_param": []}
    n = len(N)
    while len(out["alpha"]) < n_boot:
        i = rng.integers(0, n, n)
        if len(np.unique(N[i])) < 2 or len(np.unique(D[i])) < 2 or len(np.unique(i)) < 5:
            continue
        law = fit_loss_law(N[i], D[i], L[i], delta, starts=starts, n_best=2)
        n_opt, d_opt = compute_optimal(C_ref, law)
        out["E"].append(law.E)
        out["A"].append(law.A)
        out["B"].append(law.B)
        out["alpha"].append(law.alpha)
        out["beta"].append(law.beta)
        out["a"].append(law.beta / (law.alpha + law.beta))
        out["tokens_per_param"].append(d_opt / n_opt)
    return {k: np.asarray(v) for k, v in out.items()}


# ---- the prediction ---------------------------------------------------------------------------------------------

def prediction_run(law: LossLaw, budget: float, shapes: Sequence[Shape] = SHAPES,
                   settings: SweepSettings | None = None, shape: Shape | None = None) -> tuple[Run, float]:
    """The run to predict at ``budget``: ``shape`` if given, else the shape whose N is closest (in log) to the
    law's N_opt; D = C / (6 N) in whole steps. Returns (run, the law's predicted loss for that run's N and D)."""
    s = settings or SweepSettings()
    _positive(budget, "budget")
    if shape is None:
        n_opt, _ = compute_optimal(budget, law)
        shape = min(shapes, key=lambda x: abs(math.log(x.N / n_opt)))
    steps = max(1, round(budget / (6 * shape.N) / s.tokens_per_step))
    run = Run(shape, float(budget), steps, steps * s.tokens_per_step)
    return run, law(run.N, run.tokens)


def common_shape(runs: Sequence[Run]) -> Shape:
    """The largest shape that the grid trained at every one of its budgets: the natural one to train longer."""
    if not runs:
        raise ValueError("no runs given")
    budgets = {r.budget for r in runs}
    common = [sh for sh in {r.shape for r in runs} if {r.budget for r in runs if r.shape == sh} == budgets]
    if not common:
        raise ValueError("no shape was trained at every budget")
    return max(common, key=lambda sh: sh.N)


# ---- command line -----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.scaling",
                                description="Train the scaling sweep of notebook 12 and fit its laws.")
    p.add_argument("--minutes", type=float, required=True, help="time budget that picks the grid (estimated)")
    p.add_argument("--csv", default=str(RUNS_CSV), help="where the runs go (default data/scaling_runs.csv)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is best on a busy machine)")
    p.add_argument("--device", default="cpu", help="cpu (default; the stored sweep's device), cuda or mps")
    p.add_argument("--fresh", action="store_true", help="retrain runs already in the CSV")
    p.add_argument("--no-predict", action="store_true", help="skip the prediction run")
    p.add_argument("--dry-run", action="store_true", help="print the grid and its estimated time only")
    args = p.parse_args(argv)
    if not args.minutes > 0:
        p.error("--minutes should be > 0")
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads should be >= 1")
        torch.set_num_threads(args.threads)
    runs = grid_for_minutes(args.minutes)
    budgets = sorted({r.budget for r in runs})
    print(f"grid: {len(runs)} runs at budgets {', '.join(f'{c:.0e}' for c in budgets)} FLOPs; estimated "
          f"{estimate_seconds(runs) / 60:.0f} min on {machine_description()}", flush=True)
    if args.dry_run:
        for r in runs:
            print(f"  C={r.budget:.0e} N={r.N:>9,} D={r.tokens:>10,} steps={r.steps}")
        return 0
    dev = runtime.device(args.device)
    path = Path(args.csv)
    if args.fresh and path.exists():
        path.unlink()
    rows = sweep(runs, path, device=dev, log=lambda m: print(m, flush=True))
    df = _as_frame(rows)
    law = fit_loss_law(df["N"], df["D"], df["val_loss"])
    print(f"fit: L = {law.E:.3f} + {law.A:.4g}/N^{law.alpha:.3f} + {law.B:.4g}/D^{law.beta:.3f}")
    if not args.no_predict:
        big = max(budgets) * 3
        run, pred = prediction_run(law, big, shape=common_shape(runs))
        print(f"prediction before training: C={big:.0e} N={run.N:,} D={run.tokens:,}: {pred:.4f} nats/char",
              flush=True)
        from .scoreboard import wiki_char_data

        tok, tr, va = wiki_char_data()
        row = train_run(run, tr, va, tok.vocab_size, device=dev, kind="prediction", predicted_loss=pred)
        append_row(path, row)
        print(f"measured: {row['val_loss']:.4f} nats/char (predicted {pred:.4f}, error "
              f"{row['val_loss'] - pred:+.4f}) in {row['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
