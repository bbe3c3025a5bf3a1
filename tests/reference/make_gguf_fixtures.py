#!/usr/bin/env python3
"""Writes the GGUF reader's reference data, using the `gguf` Python package as the independent
reference (its GGUFWriter writes the fixture, its GGUFReader reads back what the C++ reader must
find):

  data/gguf/metadata_fixture.gguf   every metadata value type (scalars, arrays, nested arrays),
                                    a custom alignment, tensors of several types
  data/gguf/metadata_fixture.json   what gguf.GGUFReader reads from it
  data/gguf/bundled_model.json      what gguf.GGUFReader reads from the bundled SmolLM2 GGUF
                                    (header, selected metadata, every tensor's info)

Run: .venv/bin/python tests/reference/make_gguf_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as VT, GGMLQuantizationType as QT

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "gguf"


def write_fixture(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_custom_alignment(64)
    w.add_key_value("test.u8", 200, VT.UINT8)
    w.add_key_value("test.i8", -100, VT.INT8)
    w.add_key_value("test.u16", 65000, VT.UINT16)
    w.add_key_value("test.i16", -32000, VT.INT16)
    w.add_key_value("test.u32", 4000000000, VT.UINT32)
    w.add_key_value("test.i32", -2000000000, VT.INT32)
    w.add_key_value("test.u64", 18000000000000000000, VT.UINT64)  # above INT64_MAX
    w.add_key_value("test.u64_small", 123456789012345, VT.UINT64)
    w.add_key_value("test.i64", -9000000000000000000, VT.INT64)
    w.add_key_value("test.f32", 0.1, VT.FLOAT32)
    w.add_key_value("test.f64", -2.5e-300, VT.FLOAT64)
    w.add_key_value("test.bool_true", True, VT.BOOL)
    w.add_key_value("test.bool_false", False, VT.BOOL)
    w.add_key_value("test.string", "héllo, wörld ✓", VT.STRING)
    w.add_key_value("test.empty_string", "", VT.STRING)
    w.add_key_value("test.arr_str", ["a", "", "Ġthe", "<|im_end|>"], VT.ARRAY, VT.STRING)
    w.add_key_value("test.arr_i32", [1, -2, 3, -2147483648], VT.ARRAY, VT.INT32)
    w.add_key_value("test.arr_u8", [0, 255, 7], VT.ARRAY, VT.UINT8)
    w.add_key_value("test.arr_i16", [-5, 5], VT.ARRAY, VT.INT16)
    w.add_key_value("test.arr_u64", [1, 2**40], VT.ARRAY, VT.UINT64)
    w.add_key_value("test.arr_f32", [0.5, -1.25, 3.1415927], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("test.arr_f64", [1e100, -0.0], VT.ARRAY, VT.FLOAT64)
    w.add_key_value("test.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL)
    w.add_key_value("test.arr_nested", NESTED_FIXTURE_VALUE, VT.ARRAY, VT.ARRAY)
    w.add_key_value("llama.block_count", 2, VT.UINT32)

    rng = np.random.default_rng(7)
    w.add_tensor("t.f32", rng.standard_normal((3, 4)).astype(np.float32))
    w.add_tensor("t.f16", rng.standard_normal((5,)).astype(np.float16))
    w.add_tensor("t.i32", np.arange(6, dtype=np.int32).reshape(2, 3))
    q8 = gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), QT.Q8_0)
    w.add_tensor("t.q8_0", q8, raw_dtype=QT.Q8_0)
    w.add_tensor("t.scalar4d", np.ones((1, 2, 1, 2), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def field_to_json(field) -> dict:
    entry = {"type": field.types[0].name}
    if field.types[0] == VT.ARRAY:
        entry["element_type"] = field.types[1].name
    entry["value"] = field.contents()
    return entry


# GGUFReader.contents() flattens nested arrays; the nested fixture value is recorded as written.
NESTED_FIXTURE_VALUE = [[1, 2], [3, 4, 5]]


def byte_checksum(raw: np.ndarray) -> int:
    """sum(byte[i] * (i % 65521 + 1)) mod 2**64: cheap to compute on both sides, position-aware."""
    weights = (np.arange(raw.size, dtype=np.uint64) % np.uint64(65521)) + np.uint64(1)
    return int(np.sum(raw.astype(np.uint64) * weights, dtype=np.uint64))


def describe(path: Path, keys=None) -> dict:
    r = gguf.GGUFReader(str(path))
    version = int(r.fields["GGUF.version"].parts[-1][0])
    result = {
        "file": path.name,
        "version": version,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": {},
        "tensors": [],
    }
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        if keys is not None and key not in keys:
            result["metadata"].setdefault("__keys__", []).append(key)
            continue
        result["metadata"][key] = field_to_json(field)
    for t in r.tensors:
        raw = np.frombuffer(np.asarray(t.data).tobytes(), dtype=np.uint8)
        result["tensors"].append({
            "name": t.name,
            "type": int(t.tensor_type),
            "dims": [int(d) for d in t.shape],
            "offset": int(t.data_offset) - int(r.data_offset),
            "num_bytes": int(t.n_bytes),
            "checksum": str(byte_checksum(raw)),
        })
    return result


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fixture = OUT / "metadata_fixture.gguf"
    write_fixture(fixture)
    desc = describe(fixture)
    nested = desc["metadata"]["test.arr_nested"]
    assert nested["value"] == [x for row in NESTED_FIXTURE_VALUE for x in row]
    nested["value"] = NESTED_FIXTURE_VALUE
    (OUT / "metadata_fixture.json").write_text(json.dumps(desc, indent=1) + "\n")

    model = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(
        os.environ.get("VLLM_CPP_MODEL",
                       Path.home() / ".cache" / "vllm-cpp" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if model.exists():
        # Every key is listed; the values of the small ones are recorded (the big tokenizer
        # arrays are the tokenizer helper's business, only their first entries are kept).
        desc = describe(model, keys=None)
        for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            entry = desc["metadata"][key]
            entry["length"] = len(entry["value"])
            entry["value"] = entry["value"][:5] + entry["value"][-5:]
        template = desc["metadata"]["tokenizer.chat_template"]
        encoded = np.frombuffer(template["value"].encode(), dtype=np.uint8)
        template.update(type="STRING_CHECKSUM", length=int(encoded.size),
                        value=str(byte_checksum(encoded)))
        (OUT / "bundled_model.json").write_text(json.dumps(desc, indent=1) + "\n")
    else:
        print(f"bundled model not found at {model}; skipped bundled_model.json", file=sys.stderr)


if __name__ == "__main__":
    main()
