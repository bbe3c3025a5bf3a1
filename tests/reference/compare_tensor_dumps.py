#!/usr/bin/env python3
"""Compares vllm-cpp's intermediate tensors with llama.cpp's, bit for bit (a debugging tool).

  .venv/bin/python tests/reference/compare_tensor_dumps.py LLAMA_DIR OURS_DIR [--all]

LLAMA_DIR from dump_llamacpp_tensors.py, OURS_DIR from build/tests/test_model "[.llama-dump]"
with the same tokens. Prints, per tensor in forward order, how many elements differ and by how
much; stops at the first tensor that differs unless --all. Q and K are compared in Hugging Face's
element order (llama.cpp keeps Llama GGUF's interleaved rotary pairs; vllm-cpp's loader undoes
that). In the last layer llama.cpp keeps only the rows whose logits are wanted.
"""
import json
import sys

import numpy as np

LLAMA_OPS = {"Qcur": 48, "Kcur": 48, "Vcur": 29}  # after RoPE; V straight from its matmul


def llama_tensor(index, directory, name, layer, step):
    full = name if layer < 0 else f"{name}-{layer}"
    found = [r for r in index if r["name"] == full and r["step"] == step and "file" in r
             and (name not in LLAMA_OPS or r["op"] == LLAMA_OPS[name])]
    return np.load(f"{directory}/{found[-1]['file']}") if found else None


def main():
    llama_dir, ours_dir = sys.argv[1], sys.argv[2]
    show_all = "--all" in sys.argv
    llama_index = json.load(open(f"{llama_dir}/index.json"))
    for entry in json.load(open(f"{ours_dir}/index.json")):
        ours = np.fromfile(f"{ours_dir}/{entry['file']}", np.float32)
        ours = ours.reshape(entry["rows"], entry["cols"])
        theirs = llama_tensor(llama_index, llama_dir, entry["name"], entry["layer"], entry["step"])
        label = f"step {entry['step']} {entry['name']:14s} layer {entry['layer']:3d}"
        if theirs is None:
            print(f"{label}: not in llama.cpp's dump")
            continue
        if entry["name"] in ("Qcur", "Kcur"):  # [tokens, heads, head_dim/2, 2] -> HF order
            head_dim = theirs.shape[-1]
            theirs = theirs.reshape(-1, head_dim // 2, 2).transpose(0, 2, 1)
        theirs = theirs.reshape(-1, entry["cols"])
        ours = ours[-theirs.shape[0]:]
        differ = int(np.sum(theirs != ours))
        print(f"{label}: {differ} of {ours.size} differ, max |diff| "
              f"{float(np.abs(theirs - ours).max()):.3g}")
        if differ and not show_all:
            break


if __name__ == "__main__":
    main()
