"""--api-key: every /v1/* call needs 'Authorization: Bearer <key>'."""

import openai
import pytest
import requests

from conftest import MODEL_NAME, Server

KEY = "sk-test-1234"


@pytest.fixture(scope="module")
def auth_server():
    s = Server(extra_args=["--api-key", KEY])
    yield s
    assert s.stop() == 0


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
    ("GET", "/v1/unknown"),
])
def test_v1_needs_the_key(auth_server, method, path):
    body = {"prompt": "x", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                    {"Authorization": "Basic " + KEY}]:
        r = requests.request(method, auth_server.base_url + path, json=body, headers=headers,
                             timeout=30)
        assert r.status_code == 401, (path, headers)
        assert r.json()["error"]["code"] == 401


def test_right_key_works(auth_server):
    good = openai.OpenAI(base_url=auth_server.base_url + "/v1", api_key=KEY, max_retries=0)
    assert good.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2).choices
    assert [m.id for m in good.models.list().data] == [MODEL_NAME]
    bad = openai.OpenAI(base_url=auth_server.base_url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    # Health and metrics stay open for probes.
    assert requests.get(auth_server.base_url + "/health").status_code == 200
