"""/v1/chat/completions through the official openai client, and the chat template."""

import json

import requests

from conftest import MODEL_NAME, REPO

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_greedy(client):
    out = client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, max_tokens=8,
                                         temperature=0)
    assert out.object == "chat.completion"
    assert out.id.startswith("chatcmpl-")
    msg = out.choices[0].message
    assert msg.role == "assistant"
    assert msg.content
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage.completion_tokens <= 8


def test_chat_streaming_matches_non_streaming(client):
    full = client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, max_tokens=8,
                                          temperature=0)
    chunks = list(client.chat.completions.create(
        model=MODEL_NAME, messages=MESSAGES, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == full.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [full.choices[0].finish_reason]
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_chat_n_and_max_completion_tokens(client):
    out = client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES,
                                         max_completion_tokens=5, n=2, seed=11, temperature=0.9)
    assert [c.index for c in out.choices] == [0, 1]
    assert out.usage.completion_tokens <= 10


def test_chat_logprobs(client):
    out = client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, max_tokens=4,
                                         temperature=0, logprobs=True, top_logprobs=2)
    content = out.choices[0].logprobs.content
    assert 1 <= len(content) <= 4
    assert "".join(t.token for t in content) == out.choices[0].message.content
    for t in content:
        assert len(t.top_logprobs) == 2
        assert t.top_logprobs[0].logprob == t.logprob  # greedy picks the top token
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token


def test_chat_seeded_reproducible(client):
    def run():
        return client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, max_tokens=8,
                                              temperature=1.0, seed=99).choices[0].message.content
    assert run() == run()


def _reference_cases():
    """The jinja2 renders of the bundled template (tests/reference, made with Python jinja2)."""
    data = REPO / "tests" / "reference" / "data" / "chat_templates"
    conversations = json.loads((data / "conversations.json").read_text())["conversations"]
    template = json.loads((data / "templates_smollm2.json").read_text())["templates"][0]
    for case in template["cases"]:
        if "error" in case or "output" not in case:
            continue
        conv = conversations[case["conversation"]]
        if conv["tools"] or conv["documents"] or conv["kwargs"] or not conv["messages"]:
            continue  # the server refuses tools and empty conversations
        if any(not isinstance(m.get("content"), str) or m.get("tool_calls") for m in conv["messages"]):
            continue
        yield conv, case


def test_chat_template_matches_reference(server):
    checked = 0
    for conv, case in _reference_cases():
        r = requests.post(server.base_url + "/tokenize", timeout=30, json={
            "messages": conv["messages"], "add_generation_prompt": case["add_generation_prompt"],
            "continue_final_message": case.get("continue_final_message", False)})
        assert r.status_code == 200, (conv["name"], r.text)
        ours = r.json()["tokens"]
        expected = requests.post(server.base_url + "/tokenize", timeout=30, json={
            "prompt": case["output"], "add_special_tokens": False}).json()["tokens"]
        assert ours == expected, conv["name"]
        text = requests.post(server.base_url + "/detokenize", timeout=30,
                             json={"tokens": ours}).json()["prompt"]
        assert text == case["output"], conv["name"]
        checked += 1
    assert checked >= 20


def test_chat_prompt_is_the_rendered_template(server, client):
    """The chat request's prompt tokens are exactly the template's render (no extra BOS)."""
    tokenized = requests.post(server.base_url + "/tokenize", timeout=30, json={
        "messages": MESSAGES, "add_generation_prompt": True}).json()
    out = client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, max_tokens=1)
    assert out.usage.prompt_tokens == tokenized["count"]
