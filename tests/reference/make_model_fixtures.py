#!/usr/bin/env python3
"""Writes small model checkpoints for the loader tests into data/models/:

  tiny_llama.gguf        llama arch, 2 layers, hidden 256, untied output, every supported tensor
                         type across its tensors (K-quants as random valid blocks; the others
                         quantized by gguf.quants.quantize). The test converts it with
                         gguf_to_hf.py and checks both loaders agree bit for bit.
  tiny_hf_sharded/       Hugging Face LlamaForCausalLM directory, two safetensors shards + index,
                         F32/F16/BF16 tensors, untied lm_head, generation_config.json;
                         expected.safetensors holds every tensor as fp32 (numpy's conversion).
  tiny_qwen2_hf/         Qwen2ForCausalLM (q/k/v biases, tied embeddings), one BF16 file,
                         llama3-free default rope; expected.safetensors as above.

Run: .venv/bin/python tests/reference/make_model_fixtures.py
"""
import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parent / "data" / "models"
rng = np.random.default_rng(1234)


def k_quant_blocks(qtype, rows, cols, scale_offsets):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block_size
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in scale_offsets:
        scales = (np.abs(rng.standard_normal(n_blocks)) * 0.002).astype(np.float16)
        raw[:, offset:offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, -1)


def write_tiny_llama_gguf(path: Path):
    hidden, inter, heads, kv_heads, vocab, layers = 256, 256, 4, 2, 16, 2
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(layers)
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(50000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_key_value("general.sampling.temp", 0.6, gguf.GGUFValueType.FLOAT32)
    w.add_key_value("general.sampling.top_k", 40, gguf.GGUFValueType.INT32)

    def quantized(qtype, rows, cols):
        weights = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        if qtype == QT.F32:
            return weights, None
        if qtype == QT.F16:
            return weights.astype(np.float16), None
        if qtype == QT.Q4_K:
            return k_quant_blocks(qtype, rows, cols, [0, 2]), qtype
        if qtype == QT.Q5_K:
            return k_quant_blocks(qtype, rows, cols, [0, 2]), qtype
        if qtype == QT.Q6_K:
            return k_quant_blocks(qtype, rows, cols, [208]), qtype
        return gguf.quants.quantize(weights, qtype), qtype

    def add(name, qtype, rows, cols):
        data, raw_dtype = quantized(qtype, rows, cols)
        w.add_tensor(name, data, raw_dtype=raw_dtype)

    add("token_embd.weight", QT.Q8_0, vocab, hidden)
    w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
    add("output.weight", QT.Q6_K, vocab, hidden)
    kv = kv_heads * head_dim
    types = [
        dict(q=QT.Q4_K, k=QT.Q5_K, v=QT.Q6_K, o=QT.Q4_0, gate=QT.Q4_1, up=QT.Q5_0, down=QT.Q5_1),
        dict(q=QT.F16, k=QT.BF16, v=QT.F32, o=QT.Q8_0, gate=QT.Q4_K, up=QT.Q5_K, down=QT.Q6_K),
    ]
    for i in range(layers):
        t = types[i]
        w.add_tensor(f"blk.{i}.attn_norm.weight", (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        add(f"blk.{i}.attn_q.weight", t["q"], hidden, hidden)
        add(f"blk.{i}.attn_k.weight", t["k"], kv, hidden)
        add(f"blk.{i}.attn_v.weight", t["v"], kv, hidden)
        add(f"blk.{i}.attn_output.weight", t["o"], hidden, hidden)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        add(f"blk.{i}.ffn_gate.weight", t["gate"], inter, hidden)
        add(f"blk.{i}.ffn_up.weight", t["up"], inter, hidden)
        add(f"blk.{i}.ffn_down.weight", t["down"], hidden, inter)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 bits, round to nearest even (as torch does)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def hf_tensors(config, dtype_of):
    """name -> (stored array for safetensors, fp32 expected)."""
    h, i = config["hidden_size"], config["intermediate_size"]
    heads, kv_heads, vocab = (config["num_attention_heads"], config["num_key_value_heads"],
                              config["vocab_size"])
    hd = config.get("head_dim") or h // heads
    shapes = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, h)
    for l in range(config["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes.update({
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (heads * hd, h),
            p + "self_attn.k_proj.weight": (kv_heads * hd, h),
            p + "self_attn.v_proj.weight": (kv_heads * hd, h),
            p + "self_attn.o_proj.weight": (h, heads * hd),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (i, h),
            p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
        })
        if config["architectures"][0] == "Qwen2ForCausalLM":
            shapes.update({
                p + "self_attn.q_proj.bias": (heads * hd,),
                p + "self_attn.k_proj.bias": (kv_heads * hd,),
                p + "self_attn.v_proj.bias": (kv_heads * hd,),
            })
    out = {}
    for n, (name, shape) in enumerate(sorted(shapes.items())):
        values = rng.standard_normal(shape).astype(np.float32) * 0.1
        dtype = dtype_of(n)
        if dtype == "F32":
            out[name] = (values, values)
        elif dtype == "F16":
            stored = values.astype(np.float16)
            out[name] = (stored, stored.astype(np.float32))
        else:  # BF16: safetensors.numpy has no bfloat16; stored as raw bits, patched below
            bits = to_bf16_bits(values)
            out[name] = (bits, bf16_bits_to_f32(bits))
    return out


def save_with_bf16(tensors: dict, path: Path, bf16_names: set):
    """safetensors.numpy has no bfloat16 dtype: write uint16 bits as U16, then relabel the dtype
    in the header to BF16 (same element size, same bytes; data offsets are relative to the end
    of the header, so re-padding the header keeps them valid)."""
    save_file(tensors, str(path), metadata={"format": "pt"})
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    for name in bf16_names:
        assert header[name]["dtype"] == "U16"
        header[name]["dtype"] = "BF16"
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + bytes(raw[8 + n:]))


def write_hf_dir(directory: Path, config: dict, generation: dict | None, dtype_of, shards: int):
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*"):
        old.unlink()
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if generation is not None:
        (directory / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    tensors = hf_tensors(config, dtype_of)
    names = sorted(tensors)
    bf16 = {n for n in names if tensors[n][0].dtype == np.uint16}
    weight_map = {}
    if shards == 1:
        save_with_bf16({n: tensors[n][0] for n in names}, directory / "model.safetensors", bf16)
    else:
        for s in range(shards):
            part = names[s::shards]
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            save_with_bf16({n: tensors[n][0] for n in part}, directory / file, bf16 & set(part))
            weight_map.update({n: file for n in part})
        index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    save_file({n: np.ascontiguousarray(tensors[n][1]) for n in names},
              str(directory.parent / f"{directory.name}.expected.safetensors"))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_tiny_llama_gguf(OUT / "tiny_llama.gguf")

    llama = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": 24, "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": False,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "bfloat16",
    }
    generation = {"bos_token_id": 1, "eos_token_id": [2, 3], "do_sample": True,
                  "temperature": 0.6, "top_p": 0.9, "max_new_tokens": 64}
    write_hf_dir(OUT / "tiny_hf_sharded", llama, generation,
                 lambda n: ("F32", "F16", "BF16")[n % 3], shards=2)

    qwen2 = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "vocab_size": 20, "hidden_size": 24, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 8,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
        "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768,
        "bos_token_id": 151643, "eos_token_id": 151645,
    }
    write_hf_dir(OUT / "tiny_qwen2_hf", qwen2, None, lambda n: "BF16", shards=1)


if __name__ == "__main__":
    main()
