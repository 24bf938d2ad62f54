"""SmolLM2-135M-Instruct in the course's MiniGPT versus transformers' LlamaForCausalLM, both read from the GGUF file.

    python benchmarks/bench_llama.py [--threads N] [--prompt 500] [--new 200]

Prints the load time of each model, the largest |logit difference| on the prompt, and greedy decoding speed:
``course_utils.generation.generate(greedy=True)`` with its key-value cache against transformers'
``generate(do_sample=False)``, the same prompt (the first ``--prompt`` tokens of the course's Wikipedia text), the
same number of new tokens and the same CPU threads. Each generator runs twice, taking turns, and keeps its best
time. The ratio is course tokens/s over transformers tokens/s. It asserts that both produce the same tokens, and
nothing about time. Needs the GGUF file (``make setup``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_utils import llama  # noqa: E402
from course_utils.data import wiki_text  # noqa: E402
from course_utils.generation import generate  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--prompt", type=int, default=500, help="prompt length in tokens")
    p.add_argument("--new", type=int, default=200, help="new tokens to generate")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import GenerationConfig

    model, t_course = timed(llama.load_gguf_model)
    ref, t_ref = timed(llama.reference_model)
    tok = llama.load_tokenizer()
    ids = torch.tensor([tok.encode(wiki_text()[:20 * args.prompt])[:args.prompt]])
    print(f"threads {args.threads}; prompt {ids.shape[1]} tokens; {args.new} new tokens")
    print(f"load: course {t_course:.1f} s, transformers {t_ref:.1f} s")
    with torch.no_grad():
        diff = (model(ids)[0] - ref(ids).logits).abs().max().item()
    print(f"max |logit diff| on the prompt: {diff:.2e}")
    # no stop on <|im_end|>: both make exactly --new tokens
    config = GenerationConfig(do_sample=False, max_new_tokens=args.new, min_new_tokens=args.new, pad_token_id=0)
    best = {"course": float("inf"), "transformers": float("inf")}
    outs = {}
    for _ in range(args.repeats):
        outs["course"], t = timed(lambda: generate(model, ids, args.new, greedy=True, use_cache=True))
        best["course"] = min(best["course"], t)
        with torch.no_grad():
            outs["transformers"], t = timed(lambda: ref.generate(ids, attention_mask=torch.ones_like(ids),
                                                                 generation_config=config))
        best["transformers"] = min(best["transformers"], t)
    for name, t in best.items():
        print(f"{name:>12}: {args.new / t:6.1f} tokens/s  ({t:.2f} s, prompt included)")
    print(f"ratio course / transformers: {best['transformers'] / best['course']:.2f}x")
    same = outs["course"].tolist() == outs["transformers"].tolist()
    print(f"same tokens: {same}")
    assert same, "the greedy tokens differ (transformers cannot stop early here: did the course emit <|im_end|>?)"
    return 0


if __name__ == "__main__":
    sys.exit(main())
