"""`vllm-cpp generate` (offline, one prompt, through the engine): its greedy continuation of the
bundled GGUF on the CPU equals llama.cpp's recorded one (tests/reference/data/llamacpp, whose
prompts the CPU path matches bit for bit), and it reports prefill / decode throughput. Bad
flags get a clear error and a non-zero exit.
"""

import json
import re
import subprocess

import pytest

from conftest import BINARY, REPO, bundled_model

REFERENCE = REPO / "tests" / "reference" / "data" / "llamacpp" / "reference.json"


def generate(*args, timeout=120):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    if not bundled_model().exists():
        pytest.skip(f"the bundled model {bundled_model()} is missing (scripts/fetch-model)")
    return subprocess.run([str(BINARY), "generate", str(bundled_model()), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("index", [0, 7])
def test_greedy_continuation_equals_llama_cpp(index):
    reference = json.loads(REFERENCE.read_text())["prompts"][index]
    proc = generate("--prompt-token-ids", ",".join(map(str, reference["prompt_token_ids"])),
                    "--max-tokens", len(reference["greedy_token_ids"]), "--temperature", 0,
                    "--ignore-eos", "--device", "cpu", "--threads", 2)
    assert proc.returncode == 0, proc.stderr
    ids = re.search(r"^output token ids: (.*)$", proc.stdout, re.M).group(1)
    assert [int(t) for t in ids.split(",")] == reference["greedy_token_ids"]
    assert re.search(r"^prefill: \d+ tokens in [\d.]+ s = [\d.]+ tokens/s$", proc.stdout, re.M)
    assert re.search(r"^decode: \d+ tokens in [\d.]+ s = [\d.]+ tokens/s$", proc.stdout, re.M)


def test_text_prompt_is_tokenized_and_decoded():
    proc = generate("--prompt", "The capital of France is", "--max-tokens", 4, "--temperature",
                    0, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "output text:" in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["--prompt", "x", "--dtype", "int4"], "--dtype must be auto"),
    (["--prompt", "x", "--device", "tpu"], "--device"),
    (["--max-tokens", "4"], "give the prompt as --prompt TEXT or as --prompt-token-ids"),
    (["--prompt", "x", "--kv-cache-memory", "lots"], "--kv-cache-memory"),
])
def test_bad_flags_are_refused_clearly(args, needle):
    proc = generate(*args)
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr
