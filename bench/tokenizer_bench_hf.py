#!/usr/bin/env python3
"""Baseline rows for bench/tokenizer_bench.cpp: Hugging Face `tokenizers` on the same text and
tokenizers, timed the same way (thread CPU time, one thread: RAYON_NUM_THREADS=1).

  RAYON_NUM_THREADS=1 .venv/bin/python bench/tokenizer_bench_hf.py [--reps N]
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from tokenizers import Tokenizer  # noqa: E402

import make_tokenizer_vectors as ref  # noqa: E402

TEXT_BYTES = 100 * 1024


def default_text():
    text = ""
    for name in ["GPL-3", "GPL-2", "Apache-2.0", "LGPL-2.1", "MPL-2.0"]:
        with open(f"/usr/share/common-licenses/{name}", encoding="utf-8") as f:
            text += f.read()
        if len(text.encode()) >= TEXT_BYTES:
            break
    return text.encode()[:TEXT_BYTES].decode()


def bench(name, load, text, reps):
    tok = load()
    start = time.thread_time()
    ids = tok.encode(text, add_special_tokens=False).ids
    cold = (time.thread_time() - start) * 1e3
    enc, dec = [], []
    for _ in range(reps):
        start = time.thread_time()
        tok.encode(text, add_special_tokens=False)
        enc.append((time.thread_time() - start) * 1e3)
        start = time.thread_time()
        tok.decode(ids)
        dec.append((time.thread_time() - start) * 1e3)
    print(f"| {name:<26} | {len(text.encode()):>7} | {len(ids):>7} | {cold:>9.2f} | {statistics.mean(enc):>7.2f} ± "
          f"{statistics.stdev(enc):<5.2f} | {len(text.encode()) / 1e3 / statistics.mean(enc):>8.1f} | "
          f"{statistics.mean(dec):>7.2f} ± {statistics.stdev(dec):<5.2f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    text = default_text()
    print(f"tokenizer_bench_hf: Hugging Face tokenizers, {len(text.encode())} bytes, thread CPU time, {args.reps} reps\n")
    print(f"| {'tokenizer':<26} | {'bytes':>7} | {'tokens':>7} | {'cold ms':>9} | {'warm ms':>15} | {'MB/s':>8} | {'decode ms':>15} |")
    data = os.path.join(ROOT, "tests", "reference", "data", "tokenizers")
    if os.path.exists(ref.SMOLLM2_GGUF):
        bench("HF SmolLM2 (from GGUF)", lambda: ref.smollm2_from_gguf(ref.SMOLLM2_GGUF), text, args.reps)
    for name in ["claude", "llama3", "qwen2", "llama2", "gpt2"]:
        bench(f"HF {name} (tokenizer.json)", lambda: Tokenizer.from_file(os.path.join(data, name, "tokenizer.json")),
              text, args.reps)


if __name__ == "__main__":
    main()
