#!/usr/bin/env python3
"""Writes data/dequant/dequant_vectors.gguf: for every GGML type the C++ dequantizer supports, a
few test tensors of raw blocks plus `gguf.quants.dequantize`'s fp32 output for them, which the C++
result must match bit for bit. For each type:

  <type>.random       random bytes (every bit pattern of the quantized fields), with the fp16
                      scale fields replaced by finite random halves so the output is finite
  <type>.quantized    real weights quantized by gguf.quants.quantize (types it can quantize)
  <type>.special      F16/BF16/F32 only: zeros, subnormals, infinities, NaNs
  expected.<name>     F32 tensor: gguf.quants.dequantize(<name>)

Each test tensor is 2-D ([rows, row_length]) so the row layout is exercised too.
Run: .venv/bin/python tests/reference/make_dequant_vectors.py
"""
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

OUT = Path(__file__).resolve().parent / "data" / "dequant"
ROWS = 3

# type -> (row_length, byte offsets of fp16 scale fields inside a block)
TYPES = {
    QT.F32: (64, []),
    QT.F16: (64, []),
    QT.BF16: (64, []),
    QT.Q8_0: (128, [0]),
    QT.Q4_0: (128, [0]),
    QT.Q4_1: (128, [0, 2]),
    QT.Q5_0: (128, [0]),
    QT.Q5_1: (128, [0, 2]),
    QT.Q4_K: (512, [0, 2]),
    QT.Q5_K: (512, [0, 2]),
    QT.Q6_K: (512, [208]),
    QT.Q2_K: (512, [80, 82]),
    QT.Q3_K: (512, [108]),
    QT.IQ4_NL: (128, [0]),
    QT.IQ4_XS: (512, [0]),
}
QUANTIZABLE = {QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1}


def random_blocks(rng, qtype, row_length):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * row_length // block_size
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype == QT.F32:
        raw = rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8).reshape(n_blocks, 4)
    for offset in TYPES[qtype][1]:
        scales = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        raw[:, offset:offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(ROWS, -1)


def special_values(qtype, row_length):
    if qtype == QT.F32:
        values = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-40, 3.4e38],
                          dtype=np.float32).view(np.uint32)
        bits = np.resize(values, ROWS * row_length).astype(np.uint32)
        return bits.view(np.uint8).reshape(ROWS, -1)
    # F16 and BF16: every sign/exponent class incl. subnormals (exp 0), inf/NaN (exp max)
    patterns = [0x0000, 0x8000, 0x0001, 0x03FF, 0x8200, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00,
                0x7E00, 0xFE01, 0x7F80, 0xFF80, 0x7FC0, 0x0080, 0x007F, 0x8001, 0x3F80, 0xC2F7]
    bits = np.resize(np.array(patterns, dtype=np.uint16), ROWS * row_length)
    return bits.view(np.uint8).reshape(ROWS, -1)


def main():
    rng = np.random.default_rng(20261121)
    OUT.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(OUT / "dequant_vectors.gguf"), arch="dequant-test")
    for qtype, (row_length, _) in TYPES.items():
        name = qtype.name
        tensors = {f"{name}.random": random_blocks(rng, qtype, row_length)}
        if qtype in QUANTIZABLE:
            weights = (rng.standard_normal((ROWS, row_length)) * 0.1).astype(np.float32)
            tensors[f"{name}.quantized"] = gguf.quants.quantize(weights, qtype).view(np.uint8)
        if qtype in (QT.F32, QT.F16, QT.BF16):
            tensors[f"{name}.special"] = special_values(qtype, row_length)
        for tensor_name, raw in tensors.items():
            raw = np.ascontiguousarray(raw, dtype=np.uint8)
            expected = gguf.quants.dequantize(raw, qtype)
            assert expected.dtype == np.float32 and expected.shape == (ROWS, row_length)
            writer.add_tensor(tensor_name, raw, raw_dtype=qtype)
            writer.add_tensor("expected." + tensor_name, np.ascontiguousarray(expected))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
