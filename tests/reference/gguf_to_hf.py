#!/usr/bin/env python3
"""Converts a Llama-architecture GGUF (e.g. the bundled SmolLM2-135M-Instruct.Q4_1.gguf) into a
Hugging Face model directory: config.json, generation_config.json and model.safetensors (fp32),
with every tensor dequantized by the `gguf` package and written by the `safetensors` package.

This is the independent half of the "two formats, one model" check: loading the directory must
give exactly the weights (and so the logits) that loading the GGUF gives.

GGUF's llama converter permutes Q/K rows for its interleaved RoPE; they are put back in Hugging
Face order exactly as transformers' GGUF loader does (`_reverse_permute_weights`).

Run: .venv/bin/python tests/reference/gguf_to_hf.py MODEL.gguf OUT_DIR
"""
import argparse
import json
from pathlib import Path

import numpy as np
import gguf
from safetensors.numpy import save_file


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def reverse_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    # transformers.integrations.ggml._reverse_permute_weights
    dim = weights.shape[0] // n_head // 2
    w = weights.reshape(n_head, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(name: str) -> str:
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    _, layer, rest = name.split(".", 2)
    return f"model.layers.{layer}.{LAYER_NAMES[rest]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf_file")
    parser.add_argument("out_dir")
    args = parser.parse_args()

    reader = gguf.GGUFReader(args.gguf_file)
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"{args.gguf_file}: architecture {arch!r} is not llama")
    n_head = int(field(reader, "llama.attention.head_count"))
    n_kv = int(field(reader, "llama.attention.head_count_kv", n_head))
    hidden = int(field(reader, "llama.embedding_length"))
    tensor_names = {t.name for t in reader.tensors}
    vocab = field(reader, "llama.vocab_size")
    if vocab is None:
        vocab = len(reader.fields["tokenizer.ggml.tokens"].data)

    tensors = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        w = w.reshape([int(d) for d in reversed(t.shape)])  # HF row-major [out, in]
        if t.name.endswith("attn_q.weight"):
            w = reverse_permute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = reverse_permute(w, n_kv)
        tensors[hf_name(t.name)] = np.ascontiguousarray(w)

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "vocab_size": int(vocab),
        "hidden_size": hidden,
        "intermediate_size": int(field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(reader, "llama.block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": int(field(reader, "llama.attention.key_length", hidden // n_head)),
        "max_position_embeddings": int(field(reader, "llama.context_length", 2048)),
        "rope_theta": float(field(reader, "llama.rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "rms_norm_eps": float(field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    generation = {}
    for key, hf_key in (("tokenizer.ggml.bos_token_id", "bos_token_id"),
                        ("tokenizer.ggml.eos_token_id", "eos_token_id")):
        value = field(reader, key)
        if value is not None:
            config[hf_key] = int(value)
            generation[hf_key] = int(value)

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
