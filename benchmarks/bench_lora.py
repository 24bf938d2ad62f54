"""LoRA versus full fine-tuning: time of one training step, memory of the optimizer state, cost of the adapters at
inference (and of merging them away).

    python benchmarks/bench_lora.py

On the course's CPU model (notebook 08's preset: d_model=128, 4 layers, block 64, batch 32) it times, alternately
so that a busy machine slows all alike, the median of one AdamW training step for full fine-tuning and for LoRA
of rank 4 on the attention projections, and one forward pass of the adapted model and of the merged one. It
prints the times as ratios against full fine-tuning (the baseline, measured in the same run), the Adam state
measured from the optimizer's real tensors, and the largest logit difference after merging.
LoRA still back-propagates through the whole network (the activations' gradients are needed to reach the
adapters), so its step is not r/d times cheaper; what it saves is the weight gradients and the optimizer state.
Then, when the SmolLM2 file is present (``make setup``), the same comparison on the real model of notebook 18:
tokens per second of a supervised fine-tuning step (notebook 18's masked loss on 8 JSON conversations) with LoRA
of rank 8 on the attention projections against full fine-tuning, measured alternately in the same run.
Figures only; nothing is asserted about time. Runs in about a minute on an idle laptop.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import chat, facts, gguf_file, runtime, sft  # noqa: E402
from course_utils.lora import add_lora, merge_lora, optimizer_state_bytes, trainable_counts  # noqa: E402
from course_utils.model import MiniGPT  # noqa: E402
from course_utils.train import preset  # noqa: E402

WARMUP, REPEATS, RANK = 2, 9, 4


def interleaved_medians(fns: dict, warmup: int = WARMUP, repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of each function, called in turn (so a busy machine slows each alike)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    dev = runtime.device()
    runtime.seed_everything(0)
    cfg, st = preset(96, dev)
    full = MiniGPT(cfg).to(dev)
    lora = copy.deepcopy(full)
    add_lora(lora, r=RANK)
    x = torch.randint(0, cfg.vocab_size, (st.batch_size, cfg.block_size), device=dev)
    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for name, m in (("full", full), ("lora", lora))}

    def step(name: str, model: MiniGPT):
        def fn():
            _, loss = model(x, x)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
        return fn

    print(f"model: {full.num_params():,} parameters; batch {st.batch_size} x {cfg.block_size}; "
          f"{torch.get_num_threads()} threads")
    t = interleaved_medians({"full": step("full", full), "lora": step("lora", lora)})
    print(f"{'':28s} {'trainable':>10s} {'step ms':>9s} {'vs full':>8s} {'Adam state MB':>14s}")
    for name, model in (("full fine-tuning", full), (f"LoRA r={RANK} (attention)", lora)):
        key = "full" if name.startswith("full") else "lora"
        print(f"{name:28s} {trainable_counts(model)[0]:>10,} {t[key] * 1e3:9.1f} {t[key] / t['full']:8.2f} "
              f"{optimizer_state_bytes(opts[key]) / 1e6:14.3f}")
    with torch.no_grad():
        for p in lora.parameters():
            if p.requires_grad:
                p.normal_(0, 0.02)                      # a non-zero update, so merging has something to fold in
        merged = merge_lora(copy.deepcopy(lora))
        lora.eval()
        merged.eval()
        diff = (lora(x)[0] - merged(x)[0]).abs().max().item()
        f = interleaved_medians({"adapters": lambda: lora(x), "merged": lambda: merged(x)})
    print(f"inference, one forward pass: with adapters {f['adapters'] * 1e3:.1f} ms, merged "
          f"{f['merged'] * 1e3:.1f} ms (adapters / merged = {f['adapters'] / f['merged']:.2f}); "
          f"max |logit difference| {diff:.1e}")



def real_model() -> None:
    """LoRA against full fine-tuning on SmolLM2-135M-Instruct: tokens per second of one SFT step."""
    if not gguf_file.available():
        print(f"SmolLM2 file absent: skipping the real-model figures (run {gguf_file.FETCH_COMMAND})")
        return
    import json

    from course_utils.llama import load_gguf_model, load_tokenizer

    dev = runtime.device(verbose=False)
    tok = load_tokenizer()
    system = 'Reply with JSON only, in the form {"answer": ...}.'
    convs = [[{"role": "system", "content": system}, {"role": "user", "content": f"What is the capital of {c}?"},
              {"role": "assistant", "content": json.dumps({"answer": city})}] for c, city in facts.CAPITALS[:8]]
    idx, labels = chat.collate([chat.encode_chat(tok, m) for m in convs], tok.special_tokens["<|endoftext|>"])
    idx, labels = idx.to(dev), labels.to(dev)
    full = load_gguf_model().to(dev)
    lora = load_gguf_model().to(dev)
    add_lora(lora, r=8)
    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5)
            for name, m in (("full", full), ("lora", lora))}

    def step(name: str, model):
        def fn():
            with runtime.autocast(dev):
                logits, _ = model(idx)
            loss = sft.masked_cross_entropy(logits, labels)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
        return fn

    full.train()
    lora.train()
    t = interleaved_medians({"full": step("full", full), "lora": step("lora", lora)}, warmup=1, repeats=3)
    print(f"SmolLM2-135M-Instruct, one SFT step on {tuple(idx.shape)} tokens, {torch.get_num_threads()} threads:")
    for name, key in (("full fine-tuning", "full"), ("LoRA r=8 (attention)", "lora")):
        print(f"  {name:22s} {trainable_counts(full if key == 'full' else lora)[0]:>12,} trainable  "
              f"{idx.numel() / t[key]:8,.0f} tokens/s  ({t['full'] / t[key]:.2f}x full fine-tuning's speed)  "
              f"Adam state {optimizer_state_bytes(opts[key]) / 1e6:,.1f} MB")


if __name__ == "__main__":
    main()
    real_model()
