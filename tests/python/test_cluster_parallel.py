"""`vllm-cpp cluster up` with the split layouts of the acceptance list, every agent a real process:
TP=2 (Gloo) within ONE node agent that hosts two device slots, and PP=2 x TP=2 over four agents.
Greedy outputs of 32 concurrent requests equal the single-process server's.

SmolLM2 (9 query / 3 KV heads) does not divide by 2, so these use a small Llama whose heads do:
the `llama_dir` fixture writes its config.json (8 query / 4 KV heads, 4 layers, hidden 128) and
the committed byte-level BPE tokenizer of the tokenizer tests beside it, and every process loads
it with `load_format = dummy`. Dummy values are a pure function of (seed, parameter, element)
(model/dummy_weights.hpp), so the head-less single server and each rank of the split layout hold
the same fp32 numbers without a checkpoint on disk; nothing is quantized on either side.
"""

import concurrent.futures
import json
import shutil
import signal
from pathlib import Path

import openai
import pytest
import requests

from conftest import MODEL_NAME, REPO, Server, free_port
from test_cluster import ClusterUp, node_table, write_manifest

TOKENIZER = REPO / "tests" / "reference" / "data" / "tokenizers" / "gpt2" / "tokenizer.json"
SEED = 11
MAX_TOKENS = 6


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    """A Llama-shaped model directory whose heads divide by 2 (config + tokenizer, no weights)."""
    directory = tmp_path_factory.mktemp("divisible-llama")
    vocab = json.loads(TOKENIZER.read_text())["model"]["vocab"]
    (directory / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": len(vocab), "hidden_size": 128, "intermediate_size": 384,
        "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0,
        "torch_dtype": "float32"}))
    shutil.copy(TOKENIZER, directory / "tokenizer.json")
    return directory


def single_server(model: Path) -> Server:
    """`vllm-cpp serve` of the same dummy model in one process (no TP, no PP), on the CPU."""
    return Server(model=model, extra_args=[
        "--device", "cpu", "--load-format", "dummy", "--seed", str(SEED), "--max-model-len", "256",
        "--kv-cache-memory", "32M", "--max-num-batched-tokens", "512", "--threads", "1"])


PROMPTS = [f"Request {i}: the {i * 7} rivers of a country with {i % 5 + 2} seasons are"
           for i in range(32)]


def greedy_outputs(base_url):
    """Text and token count of each prompt's greedy completion, all 32 requests at once."""
    api = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=120)

    def complete(prompt):
        out = api.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=MAX_TOKENS,
                                     temperature=0, extra_body={"ignore_eos": True})
        return out.choices[0].text, out.usage.completion_tokens

    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        return list(pool.map(complete, PROMPTS))


@pytest.fixture(scope="module")
def expected(llama_dir):
    server = single_server(llama_dir)
    try:
        outputs = greedy_outputs(server.base_url)
    finally:
        assert server.stop() == 0
    assert all(count == MAX_TOKENS for _, count in outputs)
    assert len(set(text for text, _ in outputs)) > 8, "the prompts must give different outputs"
    return outputs


def run_layout(tmp_path, llama_dir, nodes, tp, pp):
    head_port = free_port()
    manifest = write_manifest(tmp_path / "layout.toml", head_port, nodes, pp=pp, tp=tp,
                              model=llama_dir, load_format="dummy",
                              engine=f'max_model_len = 256\nkv_cache_memory = "32M"\nseed = {SEED}')
    up = ClusterUp(manifest, tmp_path / "state.json", model=llama_dir)
    base_url = f"http://127.0.0.1:{head_port}"
    try:
        up.wait_healthy(base_url)
        body = requests.get(base_url + "/health", timeout=5).json()
        assert [n["state"] for n in body["nodes"]] == ["up"] * len(nodes)
        return greedy_outputs(base_url)
    finally:
        if up.proc.poll() is None:
            up.proc.send_signal(signal.SIGTERM)
            assert up.proc.wait(timeout=60) == 0
        up.log.close()


def test_tensor_parallel_2_within_one_node_agent_equals_the_single_process_server(
        tmp_path, llama_dir, expected):
    """One agent process hosts both TP ranks (two device slots, each its own worker thread);
    their Gloo group meets through the head's rendezvous and all-reduces over loopback."""
    nodes = [node_table("both-ranks", free_port(), devices=2)]
    assert run_layout(tmp_path, llama_dir, nodes, tp=2, pp=1) == expected


def test_pipeline_2_by_tensor_parallel_2_over_four_agents_equals_the_single_process_server(
        tmp_path, llama_dir, expected):
    """Four agent processes: stage 0's two TP ranks, then stage 1's; hidden states go from
    stage 0's rank 0 to both ranks of stage 1, and up to two micro-batches are in flight."""
    nodes = [node_table(f"pp{r // 2}-tp{r % 2}", free_port()) for r in range(4)]
    assert run_layout(tmp_path, llama_dir, nodes, tp=2, pp=2) == expected
