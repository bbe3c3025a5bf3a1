"""Bad input over raw HTTP: each gets its OpenAI-shaped 4xx (or is cut off by a limit or a
timeout) and the server keeps serving everyone else."""

import socket
import time

import pytest
import requests

from conftest import MAX_BODY_BYTES, MAX_MODEL_LEN, MODEL_NAME, READ_TIMEOUT_S


def post_raw(server, path, data: bytes, content_type="application/json"):
    return requests.post(server.base_url + path, data=data, timeout=30,
                         headers={"Content-Type": content_type})


def assert_error(r, status, param=None):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error


def assert_still_serving(server):
    r = requests.post(server.base_url + "/v1/completions", timeout=60,
                      json={"prompt": "Hello", "max_tokens": 2})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [b"{", b"{\"prompt\": \"x\",}", b"not json", b"", b"[1, 2]",
                                  b"{\"prompt\": \"x\"} trailing"])
def test_malformed_json(server, body):
    assert_error(post_raw(server, "/v1/completions", body), 400)


def test_invalid_utf8(server):
    assert_error(post_raw(server, "/v1/completions", b'{"prompt": "abc \xff\xfe def"}'), 400)
    assert_error(post_raw(server, "/v1/chat/completions",
                          b'{"messages": [{"role": "user", "content": "\xc3\x28"}]}'), 400)
    assert_error(post_raw(server, "/v1/completions", b'{"prompt": "\\udc00"}'), 400)


@pytest.mark.parametrize("body,param", [
    ({"prompt": 5}, "prompt"),
    ({"prompt": "x", "max_tokens": "8"}, "max_tokens"),
    ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "n": 1.5}, "n"),
    ({"prompt": "x", "stop": 3}, "stop"),
    ({"prompt": "x", "stream": "yes"}, "stream"),
    ({"prompt": "x", "logprobs": 100}, "logprobs"),
    ({"prompt": "x", "top_p": 0}, "top_p"),
    ({"prompt": "x", "max_tokens": -1}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "guided_json": {"type": "object"}}, "guided_json"),
    ({"prompt": "x", "best_of": 3}, "best_of"),
    ({"prompt": "x", "suffix": "tail"}, "suffix"),
    ({"prompt": "x", "max_tokenz": 4}, "max_tokenz"),
    ({"prompt": "x", "response_format": {"type": "json_object"}}, "response_format"),
])
def test_wrong_types_and_unsupported_fields(server, body, param):
    assert_error(requests.post(server.base_url + "/v1/completions", json=body, timeout=30), 400,
                 param)


@pytest.mark.parametrize("body,param", [
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"content": "no role"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     "response_format"),
    ({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, "top_logprobs"),
])
def test_bad_chat_requests(server, body, param):
    assert_error(requests.post(server.base_url + "/v1/chat/completions", json=body, timeout=30),
                 400, param)


def test_huge_max_tokens_and_too_long_prompt(server):
    r = requests.post(server.base_url + "/v1/completions", timeout=30,
                      json={"prompt": "Hello", "max_tokens": 10**9})
    assert_error(r, 400)
    assert str(MAX_MODEL_LEN) in r.json()["error"]["message"]
    r = requests.post(server.base_url + "/v1/completions", timeout=30,
                      json={"prompt": "hello " * (2 * MAX_MODEL_LEN), "max_tokens": 4})
    assert_error(r, 400)
    r = requests.post(server.base_url + "/v1/chat/completions", timeout=30, json={
        "messages": [{"role": "user", "content": "hello " * (2 * MAX_MODEL_LEN)}]})
    assert_error(r, 400)
    r = requests.post(server.base_url + "/v1/completions", timeout=30,
                      json={"prompt": [1, 2, 10**8], "max_tokens": 4})
    assert_error(r, 400)


def test_unknown_model_route_and_method(server):
    assert_error(requests.post(server.base_url + "/v1/completions", timeout=30,
                               json={"model": "gpt-5", "prompt": "x"}), 404, "model")
    assert_error(requests.get(server.base_url + "/v1/nothing-here", timeout=30), 404)
    assert_error(requests.get(server.base_url + "/v1/completions", timeout=30), 405)


def test_body_over_the_limit_is_413(server):
    body = b'{"prompt": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    assert_error(post_raw(server, "/v1/completions", body), 413)
    assert_still_serving(server)


def test_100mb_body_is_cut_off(server):
    size = 100 * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(size).encode() + b"\r\n\r\n")
    chunk = b"a" * (1 << 20)
    sent = 0
    start = time.time()
    try:
        while sent < size:
            sock.sendall(chunk)
            sent += len(chunk)
        reply = sock.recv(4096)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 413"), reply[:200]
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # the server hung up on us: cut off
    finally:
        sock.close()
    assert sent < size or time.time() - start < 30
    assert_still_serving(server)


def test_slow_loris_is_cut_off(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT_S + 10)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    start = time.time()
    closed = False
    # Trickle a header byte every 0.5 s; the server must close after its read timeout.
    while time.time() - start < READ_TIMEOUT_S + 8:
        try:
            sock.sendall(b"X")
            sock.settimeout(0.5)
            data = sock.recv(1024)
            if data == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        # Meanwhile the server keeps answering others.
    sock.close()
    assert closed, "a trickling client must be cut off"
    assert time.time() - start < READ_TIMEOUT_S + 4
    assert_still_serving(server)


def test_idle_connection_does_not_block_others(server):
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    try:
        assert_still_serving(server)
    finally:
        for s in idle:
            s.close()
