#!/usr/bin/env python3
"""Dumps llama.cpp's intermediate tensors for one prompt (a debugging tool, not test data).

llama.cpp hands every graph node to an eval callback (llama_context_params.cb_eval); this runs
the bundled SmolLM2 GGUF with the settings of make_llamacpp_reference.py (F32 KV cache, flash
attention off, one thread) and saves each F32 node as .npy with an index.json (name, op, ne, nb,
step: 0 for the prompt, then one per decode token). compare_tensor_dumps.py compares the result
with vllm-cpp's own dump (tests/model/test_llama_tensor_dump.cpp) tensor by tensor.

  .venv/bin/python tests/reference/dump_llamacpp_tensors.py OUT_DIR '[1,2,3]' '[4]'
"""
import ctypes
import json
import pathlib
import sys

import numpy as np
import llama_cpp
import llama_cpp.llama

from make_llamacpp_reference import DEFAULT_MODEL, SETTINGS


class GgmlTensor(ctypes.Structure):
    # ggml.h's struct ggml_tensor (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10,
    # GGML_MAX_NAME 64)
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p),
                ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int),
                ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32),
                ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p),
                ("name", ctypes.c_char * 64), ("extra", ctypes.c_void_p),
                ("padding", ctypes.c_char * 8)]


def main():
    out = pathlib.Path(sys.argv[1])
    prompt = json.loads(sys.argv[2])
    decode = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    out.mkdir(parents=True, exist_ok=True)
    index, step = [], [0]

    def on_tensor(pointer, ask, _user_data):
        if ask:
            return True  # we want every node
        t = ctypes.cast(pointer, ctypes.POINTER(GgmlTensor)).contents
        record = {"name": t.name.decode(), "type": t.type, "op": t.op, "ne": list(t.ne),
                  "nb": list(t.nb), "step": step[0]}
        if t.type == 0 and t.data and t.nb[0] == 4:  # F32 with contiguous rows
            ne, nb = list(t.ne), list(t.nb)
            size = sum((ne[i] - 1) * nb[i] for i in range(4)) + 4
            raw = np.frombuffer((ctypes.c_char * size).from_address(t.data), dtype=np.uint8)
            view = np.lib.stride_tricks.as_strided(raw.view(np.float32), shape=ne[::-1],
                                                   strides=nb[::-1])
            record["file"] = f"s{step[0]}_{len(index):04d}_{record['name']}.npy"
            np.save(out / record["file"], np.ascontiguousarray(view))
        index.append(record)
        return True

    callback = llama_cpp.ggml_backend_sched_eval_callback(on_tensor)
    default_params = llama_cpp.llama_context_default_params

    def with_callback():
        params = default_params()
        params.cb_eval = callback
        params.cb_eval_user_data = None
        return params

    llama_cpp.llama.llama_cpp.llama_context_default_params = with_callback
    llm = llama_cpp.Llama(model_path=str(DEFAULT_MODEL), verbose=False, **SETTINGS)
    index.clear()
    llm.eval(prompt)
    for token in decode:
        step[0] += 1
        llm.eval([token])
    (out / "index.json").write_text(json.dumps(index))
    print(f"{len(index)} tensors in {out}")


if __name__ == "__main__":
    main()
