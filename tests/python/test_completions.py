"""/v1/completions through the official openai client."""

import requests

from conftest import MODEL_NAME

PROMPT = "The capital of France is"


def test_completion_greedy(client):
    out = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=8, temperature=0)
    assert out.object == "text_completion"
    assert out.model == MODEL_NAME
    assert out.id.startswith("cmpl-")
    assert len(out.choices) == 1
    choice = out.choices[0]
    assert choice.text
    assert choice.finish_reason in ("length", "stop")
    assert out.usage.prompt_tokens == 5
    assert out.usage.completion_tokens <= 8
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    # Greedy is deterministic.
    again = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=8, temperature=0)
    assert again.choices[0].text == choice.text


def test_completion_streaming_matches_non_streaming(client):
    full = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=8, temperature=0)
    stream = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=8, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    text, finish, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
            continue
        text += chunk.choices[0].text
        finish = chunk.choices[0].finish_reason or finish
    assert chunks >= 3  # streamed token by token, not in one piece
    assert text == full.choices[0].text
    assert finish == full.choices[0].finish_reason
    assert usage is not None
    assert usage.prompt_tokens == full.usage.prompt_tokens
    assert usage.completion_tokens == full.usage.completion_tokens


def test_raw_stream_ends_with_done(server):
    r = requests.post(server.base_url + "/v1/completions", stream=True, timeout=60,
                      json={"prompt": PROMPT, "max_tokens": 4, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_n_greater_than_one(client):
    out = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=6, n=3,
                                    temperature=1.0, seed=7)
    assert sorted(c.index for c in out.choices) == [0, 1, 2]
    assert all(c.text for c in out.choices)
    assert 3 <= out.usage.completion_tokens <= 18
    assert out.usage.prompt_tokens == 5  # counted once for the n samples
    # Streaming n > 1: every index gets its own text and finish reason.
    finished = {}
    for chunk in client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=4, n=2,
                                           stream=True, seed=3):
        for c in chunk.choices:
            if c.finish_reason:
                finished[c.index] = c.finish_reason
    assert set(finished) == {0, 1}


def test_list_of_prompts_and_token_ids(server, client):
    def tokens(text):
        return requests.post(server.base_url + "/tokenize", json={"prompt": text},
                             timeout=30).json()["tokens"]
    text = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=5, temperature=0)
    ids = client.completions.create(model=MODEL_NAME, prompt=tokens(PROMPT), max_tokens=5,
                                    temperature=0)
    assert ids.usage.prompt_tokens == 5
    assert ids.choices[0].text == text.choices[0].text
    many = client.completions.create(model=MODEL_NAME, prompt=[PROMPT, "Once upon a time"],
                                     max_tokens=5, temperature=0)
    assert [c.index for c in many.choices] == [0, 1]
    assert many.choices[0].text == text.choices[0].text
    assert many.usage.prompt_tokens == 5 + len(tokens("Once upon a time"))
    lists = client.completions.create(model=MODEL_NAME, prompt=[tokens(PROMPT), tokens("Hi")],
                                      max_tokens=5, temperature=0)
    assert lists.choices[0].text == text.choices[0].text


def test_stop_strings(client):
    base = client.completions.create(model=MODEL_NAME, prompt="1, 2, 3, 4,", max_tokens=12,
                                     temperature=0)
    text = base.choices[0].text
    assert len(text) > 3
    stop = text[2:4]  # a string the greedy continuation contains
    out = client.completions.create(model=MODEL_NAME, prompt="1, 2, 3, 4,", max_tokens=12,
                                    temperature=0, stop=[stop])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].stop_reason == stop
    assert out.choices[0].text == text[:text.index(stop)]
    kept = client.completions.create(model=MODEL_NAME, prompt="1, 2, 3, 4,", max_tokens=12,
                                     temperature=0, stop=stop,
                                     extra_body={"include_stop_str_in_output": True})
    assert kept.choices[0].text == text[:text.index(stop) + len(stop)]


def test_seeded_sampling_is_reproducible(client):
    def sample(seed):
        return client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=10,
                                         temperature=1.0, top_p=0.95, seed=seed).choices[0].text
    a, b = sample(1234), sample(1234)
    assert a == b
    others = {sample(s) for s in (1, 2, 3)}
    assert len(others | {a}) > 1  # different seeds do not all give the same text


def test_logprobs(client):
    out = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=4, temperature=0,
                                    logprobs=3)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert "".join(lp.tokens) == out.choices[0].text
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob <= 0
        assert 3 <= len(top) <= 4
        assert top[token] == logprob
        # Greedy: the sampled token is the most likely one.
        assert logprob == max(top.values())
    assert lp.text_offset[0] == 0


def test_echo(client):
    out = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=3, temperature=0,
                                    echo=True)
    assert out.choices[0].text.startswith(PROMPT)
    assert len(out.choices[0].text) > len(PROMPT)


def test_ignore_eos_and_min_tokens(client):
    out = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=12, temperature=0,
                                    extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 12
    assert out.choices[0].finish_reason == "length"


def test_streamed_logprobs(client):
    tokens, text = [], ""
    for chunk in client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=5,
                                           temperature=0, logprobs=2, stream=True):
        c = chunk.choices[0]
        text += c.text
        if c.logprobs:
            tokens += c.logprobs.tokens
            assert all(len(top) >= 2 for top in c.logprobs.top_logprobs)
    assert "".join(tokens) == text
    assert len(tokens) >= 1
