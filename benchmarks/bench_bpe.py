"""BPE training speed: merges per second of the course's incremental trainer, against a naive rescan and against
the Rust ``tokenizers`` library, on the same Wikipedia text in the same run.

    python benchmarks/bench_bpe.py [--vocab 4096] [--naive-merges 60] [--chars N]

1. ``course_utils.bpe.train_bpe(text, vocab, method="incremental")`` on the whole Wikipedia text (the target: a
   4,096-token vocabulary in under a minute on 2 idle cores).
2. The naive rescan (``method="naive"``: recount every pair at every merge) on the same text for its first
   ``--naive-merges`` merges only (all of them would take far too long), against the incremental trainer timed
   on the same first merges: the ratio is a like-for-like speed-up (and the merges are checked to be identical).
3. ``tokenizers`` (Hugging Face, Rust) training a byte-level BPE with the same vocabulary size on the same text,
   with the GPT-2 pre-tokenizer; its thread count is printed. The merge lists are compared too.
Figures are ratios measured in one run; seconds depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import bpe, data  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def hf_train(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[bpe.ENDOFTEXT], min_frequency=0,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(text.split("\n\n"), trainer=trainer)
    return tk


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--naive-merges", type=int, default=60)
    p.add_argument("--chars", type=int, default=0, help="use only the first N characters (0: the whole text)")
    args = p.parse_args(argv)
    text = data.wiki_text()
    if args.chars:
        text = text[:args.chars]
    n_merges = args.vocab - 257
    print(f"text: {len(text):,} characters of Wikipedia; vocabulary {args.vocab:,} = 256 bytes + {n_merges:,} "
          f"merges + <|endoftext|>; {os.cpu_count()} CPUs")

    full, t_full = timed(lambda: bpe.train_bpe(text, args.vocab))
    print(f"incremental, all {n_merges:,} merges: {t_full:6.1f} s = {n_merges / t_full:8,.0f} merges/s "
          f"(target: under 60 s on 2 idle cores)")

    k = args.naive_merges
    inc, t_inc = timed(lambda: bpe.train_bpe(text, 257 + k))
    naive, t_naive = timed(lambda: bpe.train_bpe(text, 257 + k, method="naive"))
    same = inc.merges == naive.merges == full.truncated(257 + k).merges
    print(f"first {k} merges: incremental {t_inc:6.1f} s ({k / t_inc:8,.1f} merges/s), naive rescan {t_naive:6.1f} s "
          f"({k / t_naive:8,.1f} merges/s); identical merges: {same}")
    print(f"  -> incremental / naive: {t_naive / t_inc:5.1f}x faster on the same first {k} merges "
          f"(the naive cost per merge stays the same; the incremental one falls as merges touch fewer words)")
    print(f"  -> estimated naive time for all {n_merges:,} merges: {t_naive / k * n_merges / 60:,.0f} min, "
          f"{t_naive / k * n_merges / t_full:,.0f}x the incremental run")

    try:
        hf, t_hf = timed(lambda: hf_train(text, args.vocab))
    except ImportError:
        print("tokenizers is not installed: skipped")
        return 0
    threads = os.environ.get("RAYON_NUM_THREADS", f"default ({os.cpu_count()} CPUs)")
    hf_vocab = hf.get_vocab_size()
    print(f"tokenizers (Rust, threads: {threads}): {hf_vocab:,} tokens in {t_hf:6.1f} s = "
          f"{(hf_vocab - 257) / t_hf:8,.0f} merges/s")
    print(f"  -> course incremental / tokenizers: {t_hf / t_full:5.2f}x the speed (below 1: tokenizers is faster)")
    byte_of = {c: b for b, c in zip(range(256), _bytes_to_unicode(), strict=False)}
    hf_merges = [bytes(byte_of[c] for c in a) + bytes(byte_of[c] for c in b_)
                 for a, b_ in (m.split(" ") if isinstance(m, str) else m
                               for m in _hf_merges(hf))]
    ours = [full.vocab[new] for _, new in full.merge_list()]
    agree = sum(x == y for x, y in zip(ours, hf_merges, strict=False))
    first_diff = next((i for i, (x, y) in enumerate(zip(ours, hf_merges, strict=False)) if x != y), None)
    where = "" if first_diff is None else (f"; the first difference is merge {first_diff + 1}: course "
                                           f"{ours[first_diff]!r}, tokenizers {hf_merges[first_diff]!r}")
    print(f"  merges identical, position by position: {agree:,} of {len(ours):,}{where}")
    return 0


def _hf_merges(tk) -> list:
    import json

    return json.loads(tk.to_str())["model"]["merges"]


def _bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-in for each byte value 0..255, which byte-level ``tokenizers`` uses in its merges."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


if __name__ == "__main__":
    sys.exit(main())
