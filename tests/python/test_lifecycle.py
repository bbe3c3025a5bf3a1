"""Startup hint, SIGTERM with a request in flight (it finishes, then exit 0), and 503 when the
engine's waiting queue is full."""

import json
import signal
import threading
import time

import requests

from conftest import MODEL_NAME, Server


def test_startup_prints_how_to_call_it(server):
    out = server.output()
    assert f"curl http://127.0.0.1:{server.port}/v1/completions" in out


def test_sigterm_lets_the_stream_finish_then_exits_0():
    s = Server()
    try:
        events = []
        with requests.post(s.base_url + "/v1/completions", stream=True, timeout=120, json={
                "model": MODEL_NAME, "prompt": "Count: 1, 2, 3,", "max_tokens": 24,
                "ignore_eos": True, "stream": True}) as r:
            lines = r.iter_lines(decode_unicode=True)
            for line in lines:
                if line:
                    events.append(line)
                    break
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # New connections are refused or answered 503 while it drains.
            try:
                late = requests.get(s.base_url + "/health", timeout=5)
                assert late.status_code == 503
            except requests.ConnectionError:
                pass
            events += [line for line in lines if line]
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["text"]) >= 20
        assert s.proc.wait(timeout=30) == 0
    finally:
        s.stop()


def test_full_queue_is_503():
    s = Server(extra_args=["--max-num-seqs", "1", "--max-waiting-requests", "1"])
    try:
        statuses = []

        def call():
            r = requests.post(s.base_url + "/v1/completions", timeout=120, json={
                "prompt": "Hello", "max_tokens": 16, "ignore_eos": True})
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["code"] == 503

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses.count(200) >= 2
        assert statuses.count(503) >= 1
        assert set(statuses) <= {200, 503}
    finally:
        assert s.stop() == 0


def test_bad_flags_are_refused_clearly():
    import subprocess

    from conftest import BINARY
    for args, needle in [(["--dtype", "int8"], "--dtype must be auto, bfloat16, float16"),
                         (["--kv-cache-memory", "lots"], "--kv-cache-memory"),
                         (["--port", "70000"], "--port"),
                         (["--no-such-flag"], "unknown flag --no-such-flag")]:
        proc = subprocess.run([str(BINARY), "serve", *args], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0
        assert needle in proc.stderr, proc.stderr


def test_connection_limit():
    """With --max-connections 4 and 4 idle connections open, a fifth client waits until the
    read timeout closes an idle one; it is then served."""
    import socket

    from conftest import READ_TIMEOUT_S
    s = Server(extra_args=["--max-connections", "4"])
    try:
        idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
        time.sleep(0.2)
        start = time.time()
        r = requests.get(s.base_url + "/health", timeout=READ_TIMEOUT_S + 10)
        waited = time.time() - start
        assert r.status_code == 200
        assert waited >= READ_TIMEOUT_S - 1.0, waited
        for sock in idle:
            sock.close()
    finally:
        assert s.stop() == 0


def test_chat_template_flag_replaces_the_models():
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    s = Server(extra_args=["--chat-template", template])
    try:
        messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
        ours = requests.post(s.base_url + "/tokenize", timeout=30,
                             json={"messages": messages}).json()["tokens"]
        text = requests.post(s.base_url + "/detokenize", timeout=30,
                             json={"tokens": ours}).json()["prompt"]
        assert text == "[user] Hi\n[assistant] Yo\n"
    finally:
        assert s.stop() == 0
