"""Random-weight Llama and Qwen2 models from Hugging Face `transformers`, and its outputs on them.

On the GPU machine: for each architecture, builds a model of the issue's shape (4 layers, hidden
1024, 16 query / 4 KV heads) with random weights, saves it with `save_pretrained` (bf16
safetensors + config.json), then runs `transformers` on the same GPU over 32 random-token prompts:
the last-position logits and a greedy 64-token continuation of each. The reference computes in
float32 from the saved bf16 weights (so it is the exact function vllm-cpp approximates in bf16).

Writes, per architecture, OUT/<arch>/ (the model) and OUT/<arch>/reference.json + logits.f32
([32, vocab] float32). tests/engine/test_cuda_hf.cpp reads them ($VLLM_CPP_HF_DIR=OUT).

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


def main():
    out_dir = Path(sys.argv[1])
    rng = np.random.default_rng(20261121)
    prompts = [rng.integers(3, 32000, size=int(rng.integers(8, 257))).tolist()
               for _ in range(NUM_PROMPTS)]
    for arch in ("llama", "qwen2"):
        start = time.time()
        torch.manual_seed(0)
        config = make_config(arch)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model_dir = out_dir / arch
        model.save_pretrained(model_dir)
        # The reference: float32 math on exactly the saved bf16 weights.
        reference = model.float().cuda().eval()
        logits, continuations, gaps = [], [], []
        for prompt in prompts:
            first, tokens, step_gaps = greedy(reference, prompt, NEW_TOKENS)
            logits.append(first)
            continuations.append(tokens)
            gaps.append(step_gaps)
        np.stack(logits).astype(np.float32).tofile(model_dir / "logits.f32")
        (model_dir / "reference.json").write_text(json.dumps({
            "architecture": config.architectures or arch, "vocab_size": config.vocab_size,
            "new_tokens": NEW_TOKENS, "prompts": prompts, "greedy_token_ids": continuations,
            "greedy_top2_gaps": gaps, "reference_dtype": "float32 on bf16 weights",
        }))
        # Baseline: transformers in bf16 against itself in float32 (how far bf16 rounding alone
        # moves greedy decoding on this model).
        bf16 = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        bf16.load_state_dict({k: v.to(torch.bfloat16) for k, v in reference.state_dict().items()})
        bf16 = bf16.cuda().eval()
        same_bf16 = sum(greedy(bf16, p, NEW_TOKENS)[1] == c for p, c in zip(prompts, continuations))
        all_gaps = np.array(gaps).ravel()
        print(f"{arch}: transformers bf16 vs float32: {same_bf16}/{NUM_PROMPTS} identical greedy "
              f"{NEW_TOKENS}-token continuations; reference top-2 gaps: median "
              f"{np.median(all_gaps):.4f}, 5th percentile {np.percentile(all_gaps, 5):.4f}",
              flush=True)
        del reference, model, bf16
        torch.cuda.empty_cache()
        print(f"{arch}: saved {model_dir} and its reference in {time.time() - start:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
