"""200 concurrent streaming clients, 20% of them hanging up mid-stream: every other client
completes, and afterwards no request is left running and no KV block is left in use."""

import json
import socket
import threading
import time

import requests

from conftest import MODEL_NAME

NUM_CLIENTS = 200
DISCONNECT_EVERY = 5  # 20%
MAX_TOKENS = 8


def request_body(i, max_tokens=MAX_TOKENS):
    return {"model": MODEL_NAME, "prompt": f"Client {i} says: the weather today is",
            "max_tokens": max_tokens, "temperature": 0.8, "seed": i, "stream": True,
            "ignore_eos": True}


def hang_up_mid_stream(server, i, results):
    """Reads the response until the first streamed token, then closes the socket. It asks for
    far more tokens than the others, so only an abort can end it in time."""
    body = json.dumps(request_body(i, max_tokens=1000)).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=300) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        received = b""
        while b'"text"' not in received:
            data = sock.recv(4096)
            if not data:
                results[i] = "closed by the server before the first token"
                return
            received += data
    results[i] = "disconnected"


def run_client(server, i, results):
    if i % DISCONNECT_EVERY == 0:
        try:
            hang_up_mid_stream(server, i, results)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = f"error: {e!r}"
        return
    try:
        with requests.post(server.base_url + "/v1/completions", stream=True, timeout=300,
                           json=request_body(i)) as r:
            if r.status_code != 200:
                results[i] = f"HTTP {r.status_code}: {r.text[:200]}"
                return
            text, done = "", False
            for line in r.iter_lines(decode_unicode=True):
                if not line:
                    continue
                payload = line[len("data: "):]
                if payload == "[DONE]":
                    done = True
                    break
                text += json.loads(payload)["choices"][0]["text"]
            results[i] = "ok" if done and text else f"incomplete: done={done} text={text!r}"
    except Exception as e:  # noqa: BLE001 - reported below
        results[i] = f"error: {e!r}"


def test_many_streams_with_disconnects(server):
    abort_key = f'vllm:request_success_total{{model_name="{MODEL_NAME}",finished_reason="abort"}}'
    aborted_before = server.metrics()[abort_key]
    results = [None] * NUM_CLIENTS
    threads = [threading.Thread(target=run_client, args=(server, i, results))
               for i in range(NUM_CLIENTS)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.time() - start
    staying = [r for i, r in enumerate(results) if i % DISCONNECT_EVERY != 0]
    failures = [r for r in staying if r != "ok"]
    leaving = [r for i, r in enumerate(results) if i % DISCONNECT_EVERY == 0]
    assert all(r == "disconnected" for r in leaving), [r for r in leaving if r != "disconnected"][:5]
    assert not failures, failures[:5]
    assert len(staying) == NUM_CLIENTS - NUM_CLIENTS // DISCONNECT_EVERY
    print(f"{NUM_CLIENTS} streaming clients in {elapsed:.1f} s")

    # The aborted requests are gone and their blocks freed within a few steps.
    deadline = time.time() + 30
    while time.time() < deadline:
        running = server.metric("vllm:num_requests_running")
        waiting = server.metric("vllm:num_requests_waiting")
        usage = server.metric("vllm:kv_cache_usage_perc")
        if running == 0 and waiting == 0 and usage == 0:
            break
        time.sleep(0.2)
    assert (running, waiting, usage) == (0, 0, 0)
    assert server.metrics()[abort_key] - aborted_before == NUM_CLIENTS // DISCONNECT_EVERY
    # And the server still serves.
    r = requests.post(server.base_url + "/v1/completions", timeout=60,
                      json={"prompt": "Hello", "max_tokens": 2})
    assert r.status_code == 200
