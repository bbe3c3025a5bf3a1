"""`vllm-cpp cluster up` end to end: a manifest with two node agents as separate processes
(PP=2 over SmolLM2), one started as a local process and one reached through a real sshd that the
test starts on a loopback port with a generated key. Greedy outputs of 32 concurrent requests
equal the single-process server's (the head keeps two micro-batches in flight, so both stages
work at once); /health names each node; killing one agent mid-stream ends its stream with an
error within 5 s, /health reports the dead node, the head stays up and refuses new requests with
a clear 503; `cluster down` stops the rest. Bad manifests are refused before anything starts.
TP=3 runs over three agent processes here (SmolLM2's heads divide by 3); TP=2 within one agent
and PP=2 x TP=2 over four agents are in test_cluster_parallel.py, on a model whose heads divide
by 2.
"""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import openai
import pytest
import requests

from conftest import BINARY, MODEL_NAME, Server, bundled_model, free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def write_manifest(path: Path, head_port: int, nodes: list, pp: int = 2, extra: str = "",
                   tp: int = 1, model: Path = None, load_format: str = "auto",
                   engine: str = 'max_model_len = 1024\nkv_cache_memory = "128M"') -> Path:
    text = textwrap.dedent(f"""\
        [model]
        path = "{model or bundled_model()}"
        load_format = "{load_format}"
        served_model_name = "{MODEL_NAME}"

        [parallel]
        pipeline_parallel_size = {pp}
        tensor_parallel_size = {tp}

        [head]
        host = "127.0.0.1"
        port = {head_port}

        [engine]
        {{engine}}
        max_num_batched_tokens = 512
        threads = 1

        [heartbeat]
        interval_ms = 300
        deadline_ms = 1500
        startup_timeout_s = 120
        """).replace("{engine}", engine) + extra
    for node in nodes:
        text += "\n[[nodes]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str)
                                          else f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                                          for k, v in node.items())
    path.write_text(text)
    return path


def run_cluster(*args, timeout=60):
    return subprocess.run([str(BINARY), "cluster", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


class Sshd:
    """A real sshd on a free loopback port, accepting one generated key for this user."""

    def __init__(self, directory: Path):
        if not Path(SSHD).exists() or shutil.which("ssh") is None:
            pytest.skip("openssh-server / openssh-client are not installed (scripts/bootstrap)")
        self.dir = directory
        self.key = directory / "id_ed25519"
        host_key = directory / "host_ed25519"
        for key in (self.key, host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True)
        authorized = directory / "authorized_keys"
        authorized.write_text(Path(str(self.key) + ".pub").read_text())
        authorized.chmod(0o600)
        self.port = free_port()
        config = directory / "sshd_config"
        config.write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {host_key}
            AuthorizedKeysFile {authorized}
            PidFile {directory}/sshd.pid
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin yes
            """))
        if os.geteuid() == 0:  # root's sshd needs its privilege separation directory
            os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(directory / "sshd.log", "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.user = os.environ.get("USER") or subprocess.run(
            ["id", "-un"], capture_output=True, text=True).stdout.strip()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("sshd exited: " + (directory / "sshd.log").read_text())
            probe = subprocess.run(["ssh", *self.client_args(), "true"], capture_output=True)
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        pytest.fail("sshd did not accept the generated key: " + (directory / "sshd.log").read_text())

    def client_args(self):
        return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-i", str(self.key), "-p", str(self.port), f"{self.user}@127.0.0.1"]

    def manifest_fields(self):
        return {"ssh_user": self.user, "ssh_port": self.port, "ssh_key": str(self.key),
                "ssh_options": None}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def node_table(name, port, **extra):
    node = {"name": name, "address": "127.0.0.1", "port": port, "devices": 1}
    node.update({k: v for k, v in extra.items() if v is not None})
    return node


class ClusterUp:
    def __init__(self, manifest: Path, state_file: Path, model: Path = None):
        if not BINARY.exists():
            pytest.skip(f"{BINARY} is not built")
        if model is None and not bundled_model().exists():
            pytest.skip(f"the bundled model {bundled_model()} is missing")
        self.manifest = manifest
        self.state_file = state_file
        self.log_path = manifest.with_suffix(".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BINARY), "cluster", "up", str(manifest), "--state-file", str(state_file)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_healthy(self, base_url, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cluster up exited with {self.proc.returncode}:\n"
                                   + self.log_path.read_text()[-4000:])
            try:
                if requests.get(base_url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("the cluster did not become healthy:\n" + self.log_path.read_text()[-4000:])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def ancestors(pid: int):
    names = []
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        names.append(fields["Name"].strip())
        pid = int(fields["PPid"])
    return names


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cluster")
    sshd = Sshd(directory)
    head_port = free_port()
    ssh = sshd.manifest_fields()
    ssh["ssh_options"] = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
                          "LogLevel=ERROR"]
    manifest = write_manifest(directory / "cluster.toml", head_port, [
        node_table("stage0", free_port()),
        node_table("stage1", free_port(), **ssh),
    ])
    up = ClusterUp(manifest, directory / "state.json")
    up.base_url = f"http://127.0.0.1:{head_port}"
    up.sshd = sshd
    try:
        up.wait_healthy(up.base_url)
        yield up
    finally:
        if up.proc.poll() is None:
            run_cluster("down", manifest, "--state-file", directory / "state.json", timeout=60)
            try:
                up.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                up.proc.kill()
        up.log.close()
        sshd.stop()


def health(base_url):
    response = requests.get(base_url + "/health", timeout=5)
    return response.status_code, response.json()


def test_health_names_each_node(cluster):
    deadline = time.time() + 5  # worker counts come with the next heartbeat
    while True:
        status, body = health(cluster.base_url)
        if all(n["workers"] == 1 for n in body["nodes"]) or time.time() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and body["status"] == "ok"
    assert [(n["name"], n["state"]) for n in body["nodes"]] == [("stage0", "up"), ("stage1", "up")]
    assert all(n["workers"] == 1 and n["pid"] > 0 for n in body["nodes"])


def test_the_ssh_node_runs_under_sshd(cluster):
    _, body = health(cluster.base_url)
    pids = {n["name"]: n["pid"] for n in body["nodes"]}
    assert "sshd" in ancestors(pids["stage1"]), "stage1's agent must have been started over ssh"
    assert "sshd" not in ancestors(pids["stage0"])


@pytest.fixture(scope="module")
def fp32_server():
    """The single-process reference for split layouts: TP/PP ranks load fp32 weights, while a
    single CPU worker keeps GGUF blocks quantized (different, equally valid numbers)."""
    s = Server(extra_args=["--dequantize-gguf"])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def fp32_client(fp32_server):
    return openai.OpenAI(base_url=fp32_server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


def test_32_concurrent_greedy_requests_equal_the_single_process_server(cluster, fp32_client):
    prompts = [f"Request {i}: list {i % 5 + 2} facts about the number {i * 7}." for i in range(32)]
    remote = openai.OpenAI(base_url=cluster.base_url + "/v1", api_key="unused", max_retries=0,
                           timeout=120)

    def complete(api, prompt):
        out = api.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=8,
                                     temperature=0, extra_body={"ignore_eos": True})
        return out.choices[0].text

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        expected = list(pool.map(lambda p: complete(fp32_client, p), prompts))
        got = list(pool.map(lambda p: complete(remote, p), prompts))
    assert got == expected


def greedy_texts(base_url, prompts):
    api = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=120)

    def complete(prompt):
        out = api.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=6,
                                     temperature=0, extra_body={"ignore_eos": True})
        return out.choices[0].text

    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(complete, prompts))


def test_tensor_parallel_over_three_agent_processes_equals_the_single_process_server(
        tmp_path, fp32_server):
    """TP=3 (SmolLM2's 9 heads / 3 KV heads divide by 3): every rank a separate agent process,
    their Gloo group met through the head's rendezvous, all-reduces between the processes."""
    prompts = [f"Tell me about the year {1900 + 3 * i}." for i in range(32)]
    expected = greedy_texts(fp32_server.base_url, prompts)
    head_port = free_port()
    manifest = write_manifest(tmp_path / "tp3.toml", head_port,
                              [node_table(f"rank{i}", free_port()) for i in range(3)], pp=1, tp=3)
    up = ClusterUp(manifest, tmp_path / "state.json")
    base_url = f"http://127.0.0.1:{head_port}"
    try:
        up.wait_healthy(base_url)
        assert greedy_texts(base_url, prompts) == expected
    finally:
        if up.proc.poll() is None:
            up.proc.send_signal(signal.SIGTERM)
            assert up.proc.wait(timeout=60) == 0
        up.log.close()


def test_killing_an_agent_mid_stream_fails_its_requests_and_keeps_the_head_up(cluster):
    _, body = health(cluster.base_url)
    pids = {n["name"]: n["pid"] for n in body["nodes"]}
    remote = openai.OpenAI(base_url=cluster.base_url + "/v1", api_key="unused", max_retries=0,
                           timeout=60)
    stream = remote.completions.create(model=MODEL_NAME, prompt="Count to a thousand:",
                                       max_tokens=900, temperature=0, stream=True,
                                       extra_body={"ignore_eos": True})
    chunks = iter(stream)
    next(chunks)  # the request is running on both stages
    os.kill(pids["stage1"], signal.SIGKILL)
    killed_at = time.time()
    with pytest.raises(openai.APIError) as failure:
        for _ in chunks:
            pass
    assert time.time() - killed_at < 5
    assert "stage1" in str(failure.value) and "down" in str(failure.value)

    status, body = health(cluster.base_url)
    assert status == 503 and body["status"] == "degraded"
    states = {n["name"]: n["state"] for n in body["nodes"]}
    assert states == {"stage0": "up", "stage1": "down"}
    assert "stage1" in body["error"]
    assert cluster.proc.poll() is None, "the head must stay up"

    with pytest.raises(openai.InternalServerError) as refused:
        remote.completions.create(model=MODEL_NAME, prompt="hello", max_tokens=2)
    assert refused.value.status_code == 503
    assert "stage1" in str(refused.value) and "not whole" in str(refused.value)

    # cluster down stops the head and the surviving agent; nothing hangs.
    done = run_cluster("down", cluster.manifest, "--state-file", cluster.state_file, timeout=60)
    assert done.returncode == 0, done.stderr
    assert cluster.proc.wait(timeout=30) == 0
    deadline = time.time() + 10
    while pid_alive(pids["stage0"]) and time.time() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pids["stage0"])


@pytest.mark.parametrize("case", ["unknown key", "missing field", "layout", "unreachable host",
                                  "not toml"])
def test_bad_manifests_are_refused_before_anything_starts(tmp_path, case):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    agent_port = free_port()
    nodes = [node_table("a", agent_port), node_table("b", free_port())]
    extra = ""
    expected = ""
    pp = 2
    if case == "unknown key":
        extra = "\n[engine2]\nx = 1\n"
        expected = "'engine2' is not a known key"
    elif case == "missing field":
        del nodes[1]["port"]
        expected = "'nodes[1].port' is missing"
    elif case == "layout":
        pp = 3
        expected = "needs 3 devices, but the nodes have 2"
    elif case == "unreachable host":
        nodes[1].update(ssh_user="nobody", ssh_port=free_port())  # nothing listens there
        expected = "node 'b': cannot reach 127.0.0.1 over ssh"
    manifest = write_manifest(tmp_path / "bad.toml", free_port(), nodes, pp=pp, extra=extra)
    if case == "not toml":
        manifest.write_text("[model\npath = 1\n")
        expected = "is not valid TOML (line 1"
    started = time.time()
    result = run_cluster("up", manifest, "--state-file", tmp_path / "state.json", timeout=60)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert str(manifest) in result.stderr or "node 'b'" in result.stderr
    assert "starting its agent" not in result.stdout + result.stderr
    assert time.time() - started < 30
    with __import__("socket").socket() as s:  # no agent took its port
        s.bind(("127.0.0.1", agent_port))


def test_an_unreachable_agent_is_detected_by_its_heartbeat_and_rejoins(tmp_path):
    """SIGSTOP makes the agent unreachable without closing its connection: only the heartbeat
    deadline can notice. After SIGCONT the head reconnects, reopens the worker and serves again,
    with the same greedy text as before (its prefix cache is recomputed on the fresh worker)."""
    head_port = free_port()
    manifest = write_manifest(tmp_path / "one.toml", head_port, [node_table("solo", free_port())],
                              pp=1)
    up = ClusterUp(manifest, tmp_path / "state.json")
    base_url = f"http://127.0.0.1:{head_port}"
    try:
        up.wait_healthy(base_url)
        api = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        prompt = "The history of the printing press, in three sentences: " * 3
        before = api.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=8,
                                        temperature=0).choices[0].text
        _, body = health(base_url)
        agent = body["nodes"][0]["pid"]

        stream = iter(api.completions.create(model=MODEL_NAME, prompt="Count:", max_tokens=900,
                                             temperature=0, stream=True,
                                             extra_body={"ignore_eos": True}))
        next(stream)
        os.kill(agent, signal.SIGSTOP)
        stopped_at = time.time()
        try:
            with pytest.raises(openai.APIError) as failure:
                for _ in stream:
                    pass
            assert time.time() - stopped_at < 5
            assert "solo" in str(failure.value)
            status, body = health(base_url)
            assert status == 503 and body["nodes"][0]["state"] == "down"
            assert "heartbeat" in body["nodes"][0]["error"]
        finally:
            os.kill(agent, signal.SIGCONT)

        deadline = time.time() + 30
        while time.time() < deadline and health(base_url)[0] != 200:
            time.sleep(0.2)
        status, body = health(base_url)
        assert status == 200 and body["nodes"][0]["state"] == "up"
        after = api.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=8,
                                       temperature=0).choices[0].text
        assert after == before
    finally:
        if up.proc.poll() is None:
            up.proc.send_signal(signal.SIGTERM)
            assert up.proc.wait(timeout=60) == 0
        up.log.close()
