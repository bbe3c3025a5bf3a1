#!/usr/bin/env python3
"""CPU model throughput: vllm-cpp beside llama.cpp, same model, same threads, same run.

Tests (llama-bench's names): pp512 = prefill of a 512-token prompt; tg64@512 = 64 single-sequence
decode steps right after that prompt. Both engines get the same token ids. Prints one table with
mean +- stddev over the repetitions.

  .venv/bin/python bench/cpu_model_bench.py [--model GGUF] [--threads 2] [--repetitions 5]
The README's rows report the best of 5 repetitions.
Needs the vllm-cpp binary (cmake --build build --target vllm-cpp) and llama-cpp-python
(scripts/bootstrap --reference).
"""
import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("VLLM_CPP_MODEL")
    or pathlib.Path(os.environ.get("VLLM_CPP_CACHE", pathlib.Path.home() / ".cache" / "vllm-cpp"))
    / "SmolLM2-135M-Instruct.Q4_1.gguf"
)


def last_argmax(llm):
    # llama-cpp-python 0.3.x keeps no scores without logits_all: read the output row directly.
    row = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
    return int(np.argmax(row))


def llamacpp_once(llm, prompt, decode_tokens):
    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    prefill = len(prompt) / (time.perf_counter() - start)
    token = last_argmax(llm)
    start = time.perf_counter()
    for _ in range(decode_tokens):
        llm.eval([token])
        token = last_argmax(llm)
    return prefill, decode_tokens / (time.perf_counter() - start)


def vllm_cpp_once(binary, model, prompt, decode_tokens, threads):
    # max_tokens = decode_tokens + 1: the first token comes from the prefill's logits.
    cmd = [str(binary), "generate", str(model), "--prompt-token-ids", ",".join(map(str, prompt)),
           "--max-tokens", str(decode_tokens + 1), "--temperature", "0", "--ignore-eos",
           "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    prefill = float(re.search(r"^prefill: .*= ([\d.]+) tokens/s", out, re.M).group(1))
    decode = float(re.search(r"^decode: .*= ([\d.]+) tokens/s", out, re.M).group(1))
    return prefill, decode


def cell(values):
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return (f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} "
            f"(median {statistics.median(values):.1f}, best {max(values):.1f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--vllm-cpp", type=pathlib.Path, default=ROOT / "build" / "apps" / "vllm-cpp")
    parser.add_argument("--vllm-cpp-label", default="GGUF blocks, Q8 activations",
                        help="how the vllm-cpp row is named (e.g. for an older binary)")
    parser.add_argument("--skip-llamacpp", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(100, 40000, size=args.prompt_tokens)]
    llm = None
    if not args.skip_llamacpp:
        from llama_cpp import Llama

        llm = Llama(model_path=str(args.model), n_ctx=len(prompt) + args.decode_tokens + 16,
                    n_batch=len(prompt), n_ubatch=len(prompt), n_threads=args.threads,
                    n_threads_batch=args.threads, verbose=False)
    # Repetitions alternate between the engines so both see the same machine load.
    ours, theirs = ([], []), ([], [])
    for _ in range(args.repetitions):
        for results, run in ((ours, lambda: vllm_cpp_once(args.vllm_cpp, args.model, prompt,
                                                          args.decode_tokens, args.threads)),
                             (theirs, lambda: llamacpp_once(llm, prompt, args.decode_tokens))):
            if results is theirs and llm is None:
                continue
            prefill, decode = run()
            results[0].append(prefill)
            results[1].append(decode)
    rows = [(f"vllm-cpp ({args.vllm_cpp_label})", ours)]
    if llm is not None:
        rows.append(("llama.cpp (llama-cpp-python 0.3.36, Q4_1)", theirs))

    pp = f"pp{args.prompt_tokens}"
    tg = f"tg{args.decode_tokens}@{args.prompt_tokens}"
    print(f"model: {args.model.name}  threads: {args.threads}  repetitions: {args.repetitions}  "
          f"prompt: {args.prompt_tokens} random token ids  decode: {args.decode_tokens} greedy steps "
          f"after the prompt, batch 1")
    print("| engine | threads | test | t/s mean ± sd (median, best) |")
    print(f"|---|---|---|---|")
    for name, (prefill, decode) in rows:
        print(f"| {name} | {args.threads} | {pp} | {cell(prefill)} |")
        print(f"| {name} | {args.threads} | {tg} | {cell(decode)} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
