#!/usr/bin/env python3
"""Records exact (float64 numpy) last-position logits of the bundled SmolLM2 GGUF for a few of the
llama.cpp reference prompts.

llama.cpp computes with quantized activations (Q8_1 / Q8_0 blocks against Q4_1 / Q8_0 weights), an
fp16 KV cache and fp16 attention accumulation, so its logits carry noise of its own. This reference
is the same model computed exactly: weights dequantized by the `gguf` package (through
tests/reference/gguf_to_hf.py), then a plain float64 Llama forward in numpy written from the Hugging
Face definition. tests/model/test_llama_reference.cpp holds vllm-cpp's fp32 forward to it tightly.

Writes tests/reference/data/llamacpp/exact_logits.json (prompt indices) and exact_logits.f32
(float32 little-endian [num_selected, vocab]).

  .venv/bin/python tests/reference/make_exact_reference.py [--model PATH]
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "data" / "llamacpp"
SELECTED = [0, 7, 11, 20, 25, 26]  # 5, 31, 64, 256, 500 tokens and a chat prompt


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, positions, theta, dim):
    inv_freq = theta ** (-np.arange(0, dim, 2) / dim)
    angle = positions[:, None] * inv_freq[None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    a, b = x[..., : dim // 2], x[..., dim // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)


def forward_last(weights, config, ids):
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    dim, eps, theta = config["head_dim"], config["rms_norm_eps"], config["rope_theta"]
    n = len(ids)
    positions = np.arange(n, dtype=np.float64)
    x = weights["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for layer in range(config["num_hidden_layers"]):
        w = lambda name: weights[f"model.layers.{layer}.{name}.weight"]
        h = rms_norm(x, w("input_layernorm"), eps)
        q = rope((h @ w("self_attn.q_proj").T).reshape(n, heads, dim), positions, theta, dim)
        k = rope((h @ w("self_attn.k_proj").T).reshape(n, kv_heads, dim), positions, theta, dim)
        v = (h @ w("self_attn.v_proj").T).reshape(n, kv_heads, dim)
        k = np.repeat(k, heads // kv_heads, 1)
        v = np.repeat(v, heads // kv_heads, 1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(dim) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attention = np.einsum("hts,shd->thd", scores, v).reshape(n, heads * dim)
        x = x + attention @ w("self_attn.o_proj").T
        h = rms_norm(x, w("post_attention_layernorm"), eps)
        gate, up = h @ w("mlp.gate_proj").T, h @ w("mlp.up_proj").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w("mlp.down_proj").T
    head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    return rms_norm(x[-1], weights["model.norm.weight"], eps) @ head.T


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=pathlib.Path,
                        default=pathlib.Path.home() / ".cache" / "vllm-cpp" /
                        "SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    meta = json.loads((OUT / "reference.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(HERE / "gguf_to_hf.py"), str(args.model), tmp],
                       check=True, stdout=subprocess.DEVNULL)
        config = json.loads((pathlib.Path(tmp) / "config.json").read_text())
        weights = {k: v.astype(np.float64)
                   for k, v in load_file(str(pathlib.Path(tmp) / "model.safetensors")).items()}
    rows = []
    for index in SELECTED:
        ids = meta["prompts"][index]["prompt_token_ids"]
        rows.append(forward_last(weights, config, ids).astype(np.float32))
        print(f"prompt {index}: {len(ids)} tokens, argmax {int(rows[-1].argmax())}")
    np.stack(rows).astype("<f4").tofile(OUT / "exact_logits.f32")
    (OUT / "exact_logits.json").write_text(json.dumps(
        {"prompt_indices": SELECTED, "logits_file": "exact_logits.f32",
         "vocab_size": meta["vocab_size"]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
