"""Run the real gateway as a separate OS process for end-to-end tests.

    with run_gateway({"providers": {...}, "models": {...}}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)

The config dict is written to a temporary YAML file; ``server.host``/``port`` are set to a free port
on 127.0.0.1. The process is stopped (SIGTERM, then SIGKILL) when the block ends, and its log is kept
in ``gw.logs()`` for assertions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0


class GatewayProcess:
    def __init__(self, process: subprocess.Popen, port: int, log_path: Path, config_path: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.config_path = config_path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.process.wait(timeout=5)
        self._kill_group()  # worker processes of --workers N, if any survived
        return self.process.returncode

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = START_TIMEOUT,
               path: str = "/health/live") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"gateway exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"gateway at {url} did not become ready within {timeout}s")


@contextlib.contextmanager
def run_gateway(config: dict[str, Any] | str, *, workers: int = 1, env: dict[str, str] | None = None,
                port: int | None = None, args: list[str] | None = None) -> Iterator[GatewayProcess]:
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-test-"))
    config_path = workdir / "gateway.yaml"
    if isinstance(config, dict):
        config = dict(config)
        server = dict(config.get("server") or {})
        server.setdefault("host", "127.0.0.1")
        server["port"] = port
        server.setdefault("shutdown_grace_seconds", 5)
        config["server"] = server
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        config_path.write_text(config)
    log_path = workdir / "gateway.log"
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config_path), "--host", "127.0.0.1",
               "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    command += args or []
    process_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=process_env,
                                   start_new_session=True)
    gateway = GatewayProcess(process, port, log_path, config_path)
    try:
        wait_ready(gateway.url, process)
        yield gateway
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n--- gateway log ---\n{gateway.logs()}") from None
    finally:
        gateway.stop()
