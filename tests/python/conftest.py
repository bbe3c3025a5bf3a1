"""Starts the real `vllm-cpp serve` on the bundled model for the end-to-end tests.

The binary is $VLLM_CPP_BUILD/apps/vllm-cpp (default ./build); the model is the bundled
SmolLM2-135M GGUF ($VLLM_CPP_MODEL, else $VLLM_CPP_CACHE or ~/.cache/vllm-cpp). Each server runs on
a free port, is ready once /health answers 200, and is stopped with SIGTERM (which must exit 0).
$VLLM_CPP_SERVE_ARGS adds flags to every server (e.g. "--device cuda" on a GPU machine).
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import openai
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VLLM_CPP_BUILD", REPO / "build"))
BINARY = BUILD / "apps" / "vllm-cpp"
MODEL_NAME = "smollm2"
MAX_MODEL_LEN = 1024
MAX_BODY_BYTES = 2 * 1024 * 1024
READ_TIMEOUT_S = 3


def bundled_model() -> Path:
    if os.environ.get("VLLM_CPP_MODEL"):
        return Path(os.environ["VLLM_CPP_MODEL"])
    cache = Path(os.environ.get("VLLM_CPP_CACHE", Path.home() / ".cache" / "vllm-cpp"))
    return cache / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`vllm-cpp serve` of the bundled model with the suite's flags (and $VLLM_CPP_SERVE_ARGS),
    or of `model` with only `extra_args` besides host, port, name and shutdown timeout."""

    def __init__(self, extra_args=(), env=None, model=None):
        if not BINARY.exists():
            pytest.skip(f"{BINARY} is not built")
        if model is None and not bundled_model().exists():
            pytest.skip(f"the bundled model {bundled_model()} is missing (scripts/fetch-model)")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = BUILD / f"pytest-serve-{self.port}.log"
        suite_flags = [] if model is not None else [
            "--max-model-len", str(MAX_MODEL_LEN),
            "--max-request-body-bytes", str(MAX_BODY_BYTES),
            "--http-read-timeout", str(READ_TIMEOUT_S),
            *os.environ.get("VLLM_CPP_SERVE_ARGS", "").split(),
        ]
        args = [
            str(BINARY), "serve", str(model if model is not None else bundled_model()),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--served-model-name", MODEL_NAME,
            "--shutdown-timeout", "10",
            *suite_flags,
            *extra_args,
        ]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm-cpp serve exited with {self.proc.returncode}:\n"
                                   + self.log_path.read_text()[-3000:])
            try:
                if requests.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("vllm-cpp serve did not become healthy in 120 s:\n"
                           + self.log_path.read_text()[-3000:])

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def metrics(self) -> dict:
        """The samples of /metrics as {name{labels}: value}."""
        text = requests.get(self.base_url + "/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def metric(self, name: str) -> float:
        for key, value in self.metrics().items():
            if key.split("{")[0] == name:
                return value
        raise KeyError(name)


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    assert s.stop() == 0, "SIGTERM must shut the server down cleanly (exit 0)"


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)
