"""Hugging Face `transformers` on a Llama-3-8B-shaped random model, for bench/gpu/run.sh.

    python3 bench/gpu/bench_8b.py config DIR   # writes DIR/config.json (vllm-cpp --load-format dummy)
    python3 bench/gpu/bench_8b.py hf OUT.json  # transformers' rows: decode ms/token, throughput

The same shapes and request counts as vllm-cpp's rows in run.sh: single-request decode time
per output token (512 prompt tokens; (t(256 out) - t(1 out)) / 255), and offline throughput of
NUM_REQUESTS requests of 512 random prompt tokens -> 256 output tokens (greedy, no early stop),
with transformers `generate` in batches of HF_BATCH (bf16, the default sdpa attention).
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

INPUT_LEN, OUTPUT_LEN = 512, 256
NUM_REQUESTS = int(os.environ.get("NUM_REQUESTS", "1000"))
HF_BATCH = int(os.environ.get("HF_BATCH", "128"))


def llama3_8b_config() -> LlamaConfig:
    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                       max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192},
                       tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
                       torch_dtype="bfloat16")


@torch.no_grad()
def generate_seconds(model, batch: torch.Tensor, new_tokens: int) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(batch, attention_mask=torch.ones_like(batch), do_sample=False,
                   max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def hf_rows(out_path: Path) -> None:
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(llama3_8b_config(), dtype=torch.bfloat16)
    model.eval()
    gen = torch.Generator(device="cuda").manual_seed(0)
    one = torch.randint(10, 128000, (1, INPUT_LEN), device="cuda", generator=gen)
    generate_seconds(model, one, 8)  # warm-up
    t_full = min(generate_seconds(model, one, OUTPUT_LEN) for _ in range(2))
    t_first = min(generate_seconds(model, one, 1) for _ in range(3))
    decode_ms = (t_full - t_first) / (OUTPUT_LEN - 1) * 1e3

    prompts = torch.randint(10, 128000, (NUM_REQUESTS, INPUT_LEN), device="cuda", generator=gen)
    start = time.perf_counter()
    for begin in range(0, NUM_REQUESTS, HF_BATCH):
        generate_seconds(model, prompts[begin:begin + HF_BATCH], OUTPUT_LEN)
    elapsed = time.perf_counter() - start
    rows = {"engine": "transformers", "decode_ms_per_token": decode_ms,
            "single_request_s": t_full, "requests": NUM_REQUESTS, "batch": HF_BATCH,
            "elapsed_s": elapsed, "requests_per_s": NUM_REQUESTS / elapsed,
            "output_tok_per_s": NUM_REQUESTS * OUTPUT_LEN / elapsed}
    out_path.write_text(json.dumps(rows))
    print(json.dumps(rows), flush=True)


def main() -> None:
    if sys.argv[1] == "config":
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        config = llama3_8b_config()
        config.architectures = ["LlamaForCausalLM"]
        config.save_pretrained(out)
    else:
        hf_rows(Path(sys.argv[2]))


if __name__ == "__main__":
    main()
