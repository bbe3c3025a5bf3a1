"""/v1/models, /tokenize, /detokenize, /health, /version, /metrics."""

import requests

from conftest import MAX_MODEL_LEN, MODEL_NAME


def test_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_NAME]
    assert models.data[0].object == "model"


def test_tokenize_detokenize_round_trip(server):
    for text in ["Hello world", "  leading spaces and ünïcödé — 日本語 🙂", "a\nb\tc"]:
        r = requests.post(server.base_url + "/tokenize", json={"prompt": text}, timeout=30)
        assert r.status_code == 200
        body = r.json()
        assert body["count"] == len(body["tokens"]) > 0
        assert body["max_model_len"] == MAX_MODEL_LEN
        back = requests.post(server.base_url + "/detokenize", json={"tokens": body["tokens"]},
                             timeout=30)
        assert back.status_code == 200
        assert back.json()["prompt"] == text


def test_tokenize_token_strs(server):
    body = requests.post(server.base_url + "/tokenize",
                         json={"prompt": "Hello world", "return_token_strs": True}).json()
    assert len(body["token_strs"]) == body["count"]


def test_detokenize_rejects_unknown_ids(server):
    r = requests.post(server.base_url + "/detokenize", json={"tokens": [10**9]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tokens"


def test_health_and_version(server):
    assert requests.get(server.base_url + "/health").status_code == 200
    assert requests.get(server.base_url + "/version").json()["version"]


def test_metrics_count_requests(server, client):
    before = server.metrics()
    client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=3, temperature=0,
                              extra_body={"ignore_eos": True})
    after = server.metrics()
    key = f'vllm:generation_tokens_total{{model_name="{MODEL_NAME}"}}'
    assert after[key] - before[key] >= 3
    key = f'vllm:prompt_tokens_total{{model_name="{MODEL_NAME}"}}'
    assert after[key] > before[key]
    key = f'vllm:request_success_total{{model_name="{MODEL_NAME}",finished_reason="length"}}'
    assert after[key] == before[key] + 1
    text = requests.get(server.base_url + "/metrics").text
    for name in ["vllm:num_requests_running", "vllm:num_requests_waiting",
                 "vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total",
                 "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total",
                 "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_sum",
                 "vllm:e2e_request_latency_seconds_count"]:
        assert name in text, name
