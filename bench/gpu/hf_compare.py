"""Random-initialised Llama and Qwen2 models from Hugging Face `transformers`, and its outputs.

On the GPU machine: for each architecture, builds a model of the issue's shape (4 layers, hidden
1024, 16 query / 4 KV heads) with random weights, saves it with `save_pretrained` (bf16
safetensors + config.json), then runs `transformers` on the same GPU over 32 prompts: the
last-position logits and a greedy 64-token continuation of each. The reference computes in
float32 from the saved bf16 weights (so it is the exact function vllm-cpp approximates in bf16).

Two variants per architecture:
  OUT/<arch>          untrained: random-token prompts. Its next-token distributions are nearly
                      flat (top-2 logit gaps: median ~0.1, 5th percentile ~0.01), inside bf16
                      rounding noise: transformers' own bf16 run keeps only a few of 32 greedy
                      continuations of its float32 run, so no bf16 engine can reach 95% here.
  OUT/<arch>-trained  the same random initialisation trained briefly (TRAIN_STEPS AdamW steps,
                      transformers' own loss) on the token ids of the repo's Llama-2 tokenizer
                      test texts, so that it makes decisive next-token choices as a real model
                      does; prompts are windows of those texts. The greedy acceptance is measured
                      on these.

Writes OUT/<name>/ (the model), OUT/<name>/reference.json and logits.f32 ([32, vocab] float32).
tests/engine/test_cuda_hf.cpp and test_cuda_tensor_parallel.cpp read them ($VLLM_CPP_HF_DIR=OUT).

    python3 bench/gpu/hf_compare.py OUT
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

NUM_PROMPTS = 32
NEW_TOKENS = 64
TRAIN_STEPS = 300
CORPUS = Path(__file__).resolve().parents[2] / "tests/reference/data/tokenizers/llama2.jsonl"


def corpus_tokens() -> np.ndarray:
    """The token ids of every text of the Llama-2 tokenizer test file, one after another."""
    ids = []
    for line in CORPUS.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028
        if not line.strip():
            continue
        record = json.loads(line)
        ids.extend(record.get("ids", []))
    return np.array(ids, dtype=np.int64)


def train(model, tokens: np.ndarray, steps: int, seed: int):
    """A short language-model training run: batches of random 256-token windows."""
    rng = np.random.default_rng(seed)
    data = torch.tensor(tokens, device="cuda")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 30) * max(0.1, 1 - step / steps))
    for step in range(steps):
        starts = torch.tensor(rng.integers(0, len(tokens) - 257, size=32), device="cuda")
        batch = data[starts[:, None] + torch.arange(256, device="cuda")[None, :]]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  train step {step}: loss {loss.item():.3f}", flush=True)
    model.eval()


def make_config(arch: str):
    common = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816,
                  num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=4,
                  max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=2)
    if arch == "llama":
        return LlamaConfig(**common, rope_theta=500000.0)
    return Qwen2Config(**common, rope_theta=1000000.0, use_sliding_window=False)


@torch.no_grad()
def greedy(model, prompt, steps):
    ids = torch.tensor([prompt], device="cuda")
    out = model(ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1].float()
    first = logits.cpu().numpy().astype(np.float32)
    tokens, gaps = [], []
    for _ in range(steps):
        top2 = torch.topk(logits, 2)
        tokens.append(int(top2.indices[0]))
        gaps.append(float(top2.values[0] - top2.values[1]))
        out = model(torch.tensor([[tokens[-1]]], device="cuda"), past_key_values=past,
                    use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1].float()
    return first, tokens, gaps


def build(name: str, arch: str, prompts, out_dir: Path, tokens=None):
    start = time.time()
    torch.manual_seed(0)
    config = make_config(arch)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).cuda()
    if tokens is not None:
        train(model, tokens, TRAIN_STEPS, seed=1)
    model = model.to(torch.bfloat16)
    model_dir = out_dir / name
    model.save_pretrained(model_dir)
    # The reference: float32 math on exactly the saved bf16 weights.
    reference = model.float().eval()
    logits, continuations, gaps = [], [], []
    for prompt in prompts:
        first, tokens_out, step_gaps = greedy(reference, prompt, NEW_TOKENS)
        logits.append(first)
        continuations.append(tokens_out)
        gaps.append(step_gaps)
    # Baseline: transformers in bf16 against itself in float32 (how far bf16 rounding alone
    # moves the logits and greedy decoding on this model).
    bf16 = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    bf16.load_state_dict({k: v.to(torch.bfloat16) for k, v in reference.state_dict().items()})
    bf16 = bf16.cuda().eval()
    bf16_runs = [greedy(bf16, p, NEW_TOKENS) for p in prompts]
    same_bf16 = sum(run[1] == c for run, c in zip(bf16_runs, continuations))
    bf16_errors = [float(np.linalg.norm(run[0] - ref) / np.linalg.norm(ref))
                   for run, ref in zip(bf16_runs, logits)]
    np.stack(logits).astype(np.float32).tofile(model_dir / "logits.f32")
    (model_dir / "reference.json").write_text(json.dumps({
        "architecture": config.architectures or arch, "vocab_size": config.vocab_size,
        "new_tokens": NEW_TOKENS, "prompts": prompts, "greedy_token_ids": continuations,
        "greedy_top2_gaps": gaps, "reference_dtype": "float32 on bf16 weights",
        "trained_steps": TRAIN_STEPS if tokens is not None else 0,
        "transformers_bf16_worst_logits_error": max(bf16_errors),
        "transformers_bf16_mean_logits_error": float(np.mean(bf16_errors)),
        "transformers_bf16_identical_greedy": int(same_bf16),
    }))
    all_gaps = np.array(gaps).ravel()
    print(f"{name}: transformers bf16 vs float32: {same_bf16}/{NUM_PROMPTS} identical greedy "
          f"{NEW_TOKENS}-token continuations, last-position logits relative error worst "
          f"{max(bf16_errors):.4f} mean {np.mean(bf16_errors):.4f}; reference top-2 gaps: median "
          f"{np.median(all_gaps):.4f}, 5th percentile {np.percentile(all_gaps, 5):.4f}",
          flush=True)
    del reference, model, bf16
    torch.cuda.empty_cache()
    print(f"{name}: saved {model_dir} and its reference in {time.time() - start:.1f} s", flush=True)


def main():
    out_dir = Path(sys.argv[1])
    rng = np.random.default_rng(20261121)
    random_prompts = [rng.integers(3, 32000, size=int(rng.integers(8, 257))).tolist()
                      for _ in range(NUM_PROMPTS)]
    tokens = corpus_tokens()
    text_prompts = []
    for _ in range(NUM_PROMPTS):
        length = int(rng.integers(8, 257))
        begin = int(rng.integers(0, len(tokens) - length))
        text_prompts.append(tokens[begin:begin + length].tolist())
    for arch in ("llama", "qwen2"):
        build(arch, arch, random_prompts, out_dir)
        build(f"{arch}-trained", arch, text_prompts, out_dir, tokens)


if __name__ == "__main__":
    main()
