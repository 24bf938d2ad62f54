"""Plotting helpers shared by the notebooks. Every figure gets a title and labelled axes.

Several notebooks add helpers here: add new functions, never rename or remove one another notebook uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import PowerNorm


def char_label(ch: str) -> str:
    """A character as a readable label: a space as '␣', a newline as '\\n', other characters as themselves."""
    return {" ": "␣", "\n": "\\n", "\t": "\\t"}.get(ch, ch)


def plot_token_distribution(probs, labels: Sequence[str], top: int = 20, ax=None, title: str | None = None,
                            color: str = "C0"):
    """Bar chart of the ``top`` most likely tokens of a distribution ``probs`` (V,), labelled by ``labels`` (V).

    Returns the axes. Tokens with probability 0 (filtered out by top-k / top-p) are not drawn.
    """
    p = torch.as_tensor(probs).detach().float().cpu()
    if p.dim() != 1 or len(labels) != p.shape[0]:
        raise ValueError(f"probs should have shape (V,) with one label per token; got probs {tuple(p.shape)} "
                         f"and {len(labels)} labels")
    order = torch.argsort(p, descending=True)[:top]
    order = order[p[order] > 0]
    ax = ax or plt.subplots(figsize=(7, 3))[1]
    ax.bar(range(len(order)), p[order].numpy(), color=color)
    ax.set_xticks(range(len(order)), [labels[int(i)] for i in order])
    ax.set_xlabel("next token (most likely first)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, max(1e-9, float(p.max())) * 1.1)
    ax.set_title(title or f"Top {len(order)} next tokens")
    return ax


def plot_attention_heads(maps, tokens: Sequence[str], title: str = "Attention weights, head by head",
                         size: float = 2.6):
    """A grid of attention maps: ``maps`` (n_layers, n_heads, T, T), row i = query position i, column j = key j.

    ``tokens`` (T labels) name the positions. The colour scale is a square root of the weight (0 to 1), so
    small weights stay visible next to large ones. Returns the figure.
    """
    m = torch.as_tensor(maps).detach().float().cpu().numpy()
    if m.ndim != 4 or m.shape[-1] != m.shape[-2] or m.shape[-1] != len(tokens):
        raise ValueError(f"maps should have shape (n_layers, n_heads, T, T) with T = len(tokens) = {len(tokens)}; "
                         f"got {m.shape}")
    L, H, T, _ = m.shape
    fig, axes = plt.subplots(L, H, figsize=(size * H, size * L), squeeze=False)
    step = max(1, T // 16)
    for layer in range(L):
        for head in range(H):
            ax = axes[layer, head]
            ax.imshow(m[layer, head], cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=1))   # sqrt: small
            # weights stay visible next to the large ones
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            ticks = np.arange(0, T, step)
            ax.set_xticks(ticks, [tokens[t] for t in ticks], fontsize=6)
            ax.set_yticks(ticks, [tokens[t] for t in ticks], fontsize=6)
            if layer == L - 1:
                ax.set_xlabel("key position (looked at)", fontsize=8)
            if head == 0:
                ax.set_ylabel("query position", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_attention(weights, labels: Sequence[str], title: str = "Attention weights", ax=None,
                   key_labels: Sequence[str] | None = None, vmax: float | None = None, colorbar: bool = True):
    """Heatmap of one attention matrix ``weights`` (T_q, T_k): row i = query position i, column j = key j.

    ``labels`` name the query positions (T_q); ``key_labels`` the keys (default: the same labels). ``vmax``
    fixes the top of the colour scale (e.g. 1 to compare several maps). Returns the image (for a shared colorbar).
    """
    w = torch.as_tensor(weights).detach().float().cpu()
    key_labels = labels if key_labels is None else key_labels
    if w.dim() != 2 or w.shape[0] != len(labels) or w.shape[1] != len(key_labels):
        raise ValueError(f"weights should have shape (T_q, T_k) = ({len(labels)}, {len(key_labels)}) to match the "
                         f"labels; got {tuple(w.shape)}")
    ax = ax or plt.subplots(figsize=(5.2, 4.4))[1]
    im = ax.imshow(w.numpy(), cmap="viridis", vmin=0, vmax=vmax)
    ax.set_xticks(range(len(key_labels)), list(key_labels), rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), list(labels))
    ax.set_xlabel("key position j (attended to)")
    ax.set_ylabel("query position i (attending)")
    ax.set_title(title)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, label="attention weight")
    return im


def plot_positional_encoding(position: int = 20, pair: int = 3, d: int = 64, T: int = 128):
    """Three panels on the sinusoidal encodings (notebook 06); returns the figure.

    Left: pair ``pair``'s sine and cosine along positions 0..T-1, ``position`` marked. Middle: the whole vector
    PE(position), d coordinates. Right: cosine similarity of PE(position) with every position's encoding.
    """
    import math

    from .positional import sinusoidal_encoding

    if d % 2 or d < 2:
        raise ValueError(f"d should be an even number of coordinates >= 2, got {d}")
    if not 0 <= pair < d // 2:
        raise ValueError(f"pair should be between 0 and d/2 - 1 = {d // 2 - 1}, got {pair}")
    if not 0 <= position < T:
        raise ValueError(f"position should be between 0 and T - 1 = {T - 1}, got {position}")
    table = sinusoidal_encoding(T, d, dtype=torch.float64)
    omega = 10000.0 ** (-2 * pair / d)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    axes[0].plot(table[:, 2 * pair].numpy(), label="sin (coordinate 2i)")
    axes[0].plot(table[:, 2 * pair + 1].numpy(), label="cos (coordinate 2i+1)")
    axes[0].axvline(position, color="k", ls="--", lw=1)
    axes[0].set(title=f"pair i={pair}: omega = {omega:.3g} rad/position, wavelength {2 * math.pi / omega:.1f}",
                xlabel="position", ylabel="value")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].bar(np.arange(d), table[position].numpy(), color=["C0", "C1"] * (d // 2))
    axes[1].set(title=f"PE({position}), all {d} coordinates (blue: sin, orange: cos)", xlabel="coordinate",
                ylabel="value", ylim=(-1.1, 1.1))
    similarity = (table @ table[position]) / (d / 2)
    axes[2].plot(similarity.numpy())
    axes[2].axvline(position, color="k", ls="--", lw=1)
    axes[2].set(title=f"Similarity of PE({position}) to every position", xlabel="position",
                ylabel="cosine similarity", ylim=(-1.05, 1.05))
    fig.tight_layout()
    return fig
