"""`vllm-cpp bench serve` against our server prints its table."""

import json
import subprocess

from conftest import BINARY, MODEL_NAME


def test_bench_serve_prints_table(server, tmp_path):
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [str(BINARY), "bench", "serve", "--base-url", server.base_url, "--model", MODEL_NAME,
         "--num-prompts", "8", "--request-rate", "inf", "--input-len", "32", "--output-len", "8",
         "--max-token-id", "40000", "--json", str(out_json)],
        capture_output=True, text=True, timeout=180)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in ["request throughput (req/s)", "output token throughput (tok/s)", "TTFT (ms)",
                "TPOT (ms)", "ITL (ms)"]:
        assert row in proc.stdout
    result = json.loads(out_json.read_text())
    assert result["completed"] == 8
    assert result["total_input_tokens"] == 8 * 32
    assert result["total_output_tokens"] == 8 * 8
    assert 0 < result["ttft_ms"]["p50"] <= result["ttft_ms"]["p99"]
