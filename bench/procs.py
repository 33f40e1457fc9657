"""The processes a benchmark starts: pinned with taskset, measured through /proc, always stopped.

Every process is started in its own session, so stopping it (SIGTERM, then SIGKILL to its process
group) also stops the workers it forked. CPU time and memory are read from ``/proc``: CPU as
utime + stime over the whole process tree, memory as ``VmRSS`` / ``VmHWM`` of the biggest process
(the worker).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_plan() -> tuple[list[int] | None, list[int] | None]:
    """(proxy cores, load + upstream cores): the first core for the proxy, the rest for the load."""
    if shutil.which("taskset") is None:
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return cores[:1], cores[1:]


class Proc:
    def __init__(self, name: str, argv: list[str], log_dir: Path, cpus: list[int] | None = None,
                 env: dict[str, str | None] | None = None, cwd: str | None = None) -> None:
        self.name = name
        self.argv = argv
        self.cpus = cpus
        self.log_path = log_dir / f"{name}.log"
        command = list(argv)
        if cpus:
            command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
        environ = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=environ,
                                            start_new_session=True)
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def tree(self) -> list[int]:
        """This process and every descendant still running."""
        pids, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            for task in _listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    queue += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        return pids

    def children(self) -> list[int]:
        return self.tree()[1:]

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in self.tree())

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB of the biggest process in the tree."""
        rss = hwm = 0
        for pid in self.tree():
            status = _status(pid)
            rss, hwm = max(rss, status.get("VmRSS", 0)), max(hwm, status.get("VmHWM", 0))
        return round(rss / 1024, 1), round(hwm / 1024, 1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def system_busy_seconds() -> float:
    """CPU seconds every core spent not idle since boot (from /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def reaped_children_cpu_seconds() -> float:
    """CPU of the bench's finished child processes (the load generator runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pin(pid: int, cpus: list[int], idle_class: bool = False) -> None:
    """Pin every thread of ``pid`` to ``cpus``; with ``idle_class``, run it in SCHED_IDLE too: it then
    only gets the CPU that every normal process on those cores leaves over."""
    for task in _listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task), cpus)
            if idle_class:
                os.sched_setscheduler(int(task), os.SCHED_IDLE, os.sched_param(0))


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError):
        return 0.0


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Vm"):
                name, _, value = line.partition(":")
                values[name] = int(value.split()[0])
    return values


def wait_port(port: int, process: Proc | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s"
                       + (f":\n{process.log_tail()}" if process else ""))


class CpuQuota:
    """A CFS quota of ``share`` of a core for the processes put in it (cgroup v1 ``cpu`` or v2), used to
    give each gateway worker "a core of its own" on a machine with too few cores to give it a real one."""

    V1 = Path("/sys/fs/cgroup/cpu")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, name: str, share: float, period_us: int = 100_000) -> None:
        v1 = (self.V1 / "cpu.cfs_quota_us").exists()
        self.path = (self.V1 if v1 else self.V2) / name
        self.path.mkdir(exist_ok=True)
        quota = int(share * period_us)
        if v1:
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (self.path / "cpu.max").write_text(f"{quota} {period_us}")

    @classmethod
    def available(cls) -> bool:
        try:
            cls("switchyard-bench-probe", 1.0).remove()
            return True
        except OSError:
            return False

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Move what is left back to the parent group, then delete the group."""
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.path.parent / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()
