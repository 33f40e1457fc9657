"""The benchmark: the gateway against direct calls, a bare proxy (the floor) and, optionally, LiteLLM.

    python -m bench [--vs-litellm] [--rounds 3] [--duration 8] [--soak 200000] [--workers-scaling]
                    [--clients] [--out bench/results/NAME.json]

Starts the upstreams (nginx when installed, else ``bench.upstream``; the streaming fake always), the
floor (``bench.floor``), the gateway (``python -m gateway serve``, one worker, master key, metrics on)
and LiteLLM when asked; pins the proxy to the first core and everything else to the others; warms
each proxy up; then runs every target at c=1, c=32 and streams at c=8, round after round, and prints
the median of each figure with the ratios the performance issue sets as targets. Every process it
starts is stopped at the end, whatever happens. See docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import report, targets
from bench.load import LoadGenerator
from bench.procs import CpuQuota, Proc, cpu_plan, pin, process_cpu_seconds, reaped_children_cpu_seconds, system_busy_seconds
from bench.report import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Switchyard hot-path benchmark")
    p.add_argument("--rounds", type=int, default=3, help="rounds over every target (median reported)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per proxy")
    p.add_argument("--vs-litellm", action="store_true", help="also measure the LiteLLM proxy")
    p.add_argument("--litellm-venv", type=Path,
                   default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "switchyard-bench-litellm",
                   help="virtual environment holding litellm[proxy] (created when missing)")
    p.add_argument("--clients", action="store_true",
                   help="client comparison: the gateway with aiohttp, httpx and httpx-aiohttp instead of its own "
                        "client, and the floor with httpx, httpx-aiohttp and a minimal raw client")
    p.add_argument("--soak", type=int, default=0, help="requests for the RSS growth check (e.g. 200000)")
    p.add_argument("--workers-scaling", action="store_true", help="measure --workers 2 against one worker")
    p.add_argument("--worker-share", type=float, default=0.45,
                   help="--workers-scaling with cgroup quotas: each worker's CPU, in cores")
    p.add_argument("--targets", default="direct,floor,gateway",
                   help="comma-separated subset to run: direct, floor, gateway, gateway-redis (state.backend: redis)")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--no-nginx", action="store_true", help="use the Python upstream even if nginx exists")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    p.add_argument("--nice", type=int, default=0,
                   help="scheduling priority for the bench and everything it starts (e.g. -10 on a shared machine; "
                        "negative values need root)")
    p.add_argument("--quiet-wait", type=float, default=20.0,
                   help="before each run, wait up to this many seconds for other work on the machine to stop")
    p.add_argument("--stream-chunks", type=int, default=20)
    p.add_argument("--stream-interval-ms", type=float, default=2.0)
    p.add_argument("--out", type=Path, help="JSON result file (default: bench/results/<timestamp>.json)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs and process logs)")
    return p.parse_args(argv)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
        self.proxy_cpus, self.load_cpus = (None, None) if args.no_pin else cpu_plan()
        self.load = LoadGenerator(self.work, self.load_cpus, force_python=args.python_load)
        self.procs: list[Proc] = []
        self.info: dict = {}
        self.memory: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.quotas: list[CpuQuota] = []
        if args.nice:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every process the bench starts

    def say(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # -- set-up -----------------------------------------------------------------------------------

    def start(self) -> list[targets.Target]:
        a = self.args
        procs, self.info = targets.start_upstreams(self.work, self.load_cpus, not a.no_nginx, a.stream_chunks,
                                                   a.stream_interval_ms)
        self.procs += procs
        self.say(f"upstream: {self.info['upstream']}; load generator: {self.load.tool} (streams: python); "
                 f"pinning: proxy cores {self.proxy_cpus or 'any'}, load and upstream cores {self.load_cpus or 'any'}")
        wanted = [t.strip() for t in a.targets.split(",") if t.strip()]
        if a.vs_litellm and "litellm" not in wanted:
            wanted.append("litellm")
        out: list[targets.Target] = []
        for name in wanted:
            out += self._make(name)
        if a.clients:
            out.append(self._track(targets.floor(self.work, self.proxy_cpus, self.info, "raw")))
            for client in ("aiohttp", "httpx", "httpx-aiohttp"):
                if client != "aiohttp":  # the floor's own client is aiohttp already
                    out.append(self._track(targets.floor(self.work, self.proxy_cpus, self.info, client)))
                out.append(self._track(targets.gateway(self.work, self.proxy_cpus, self.info, client=client,
                                                       name=f"gateway-{client}")))
        for target in out:
            targets.wait_probe(target, timeout=180 if target.name == "litellm" else 60)
            if target.proc is not None:
                time.sleep(0.5)
                self.memory[target.name] = {"rss_start_mb": target.proc.memory_mb()[0]}
        return out

    def _track(self, target: targets.Target) -> targets.Target:
        if target.proc is not None:
            self.procs.append(target.proc)
        return target

    def _make(self, name: str) -> list[targets.Target]:
        if name == "direct":
            return [targets.direct(self.info)]
        if name == "floor":
            return [self._track(targets.floor(self.work, self.proxy_cpus, self.info))]
        if name == "gateway":
            return [self._track(targets.gateway(self.work, self.proxy_cpus, self.info))]
        if name == "gateway-redis":  # the same gateway with state.backend: redis and no rate limits
            redis, url = targets.redis_server(self.work, self.load_cpus)
            self.procs.append(redis)
            state = {"backend": "redis", "url": url}
            return [self._track(targets.gateway(self.work, self.proxy_cpus, self.info, name=name, state=state))]
        if name == "litellm":
            binary = targets.litellm_binary(self.args.litellm_venv) or targets.install_litellm(self.args.litellm_venv)
            target = self._track(targets.litellm(self.work, self.proxy_cpus, self.info, binary))
            self.info["litellm_version"] = _litellm_version(binary)
            return [target]
        raise SystemExit(f"unknown target {name!r}")

    # -- measuring --------------------------------------------------------------------------------

    def measure(self, target: targets.Target, scenario: str, concurrency: int, stream: bool,
                duration: float | None = None) -> dict:
        url = target.stream_url if stream else target.url
        before = self._cpu_snapshot(target)
        wall = time.monotonic()
        result = self.load.run(url, target.body(stream), target.headers, concurrency,
                               duration or self.args.duration, stream=stream)
        wall = time.monotonic() - wall
        after = self._cpu_snapshot(target)
        if target.proc is not None and result["requests"]:
            result["cpu_ms_per_req"] = round((after[0] - before[0]) * 1000 / result["requests"], 4)
        # CPU that neither the bench nor its processes used: other work on the machine (noise)
        ours = after[1] - before[1] + after[2] - before[2]
        result["background_cores"] = round(max(0.0, (after[3] - before[3] - ours) / wall), 3)
        result.update(target=target.name, scenario=scenario)
        return result

    def _cpu_snapshot(self, target: targets.Target | None) -> tuple[float, float, float, float]:
        """(target's CPU, all our live processes' CPU, reaped children's CPU, whole machine busy)."""
        ours = sum(proc.cpu_seconds() for proc in self.procs if proc.alive())
        return (target.proc.cpu_seconds() if target and target.proc else 0.0, ours, reaped_children_cpu_seconds(),
                system_busy_seconds())

    def wait_quiet(self) -> None:
        """On a shared machine, wait (up to ``--quiet-wait`` s) until other work uses < 0.25 core."""
        deadline = time.monotonic() + self.args.quiet_wait
        while True:
            before, wall = self._cpu_snapshot(None), time.monotonic()
            time.sleep(0.5)
            after = self._cpu_snapshot(None)
            busy = (after[3] - before[3] - (after[1] - before[1]) - (after[2] - before[2])) / (time.monotonic() - wall)
            if busy < 0.25 or time.monotonic() > deadline:
                return

    def warm_up(self, target: targets.Target) -> None:
        if target.proc is None:
            return
        seconds = self.args.warmup
        self.measure(target, "warmup", 32, False, duration=seconds)
        self.measure(target, "warmup", 8, True, duration=max(1.0, seconds / 2))
        time.sleep(1.0)
        self.memory[target.name]["rss_idle_mb"] = target.proc.memory_mb()[0]

    def rounds(self, all_targets: list[targets.Target]) -> None:
        for target in all_targets:
            self.say(f"warming up {target.name}")
            self.warm_up(target)
        for number in range(1, self.args.rounds + 1):
            # scenario by scenario, so the targets compared in one scenario run minutes apart at most
            for scenario, concurrency, stream in SCENARIOS:
                for target in all_targets:
                    self.wait_quiet()
                    result = self.measure(target, scenario, concurrency, stream)
                    result["round"] = number
                    self.runs.append(result)
                    extra = f" ttft p50 {result.get('ttft_p50_ms')} ms" if stream else ""
                    self.say(f"round {number} {target.name:<22} {scenario:<8} {result['rps']:>9,.0f} req/s  "
                             f"p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  "
                             f"cpu {result.get('cpu_ms_per_req')} ms/req{extra}  errors {result['errors']}  "
                             f"background {result['background_cores']} cores")
        for target in all_targets:
            if target.proc is not None:
                self.memory[target.name]["rss_peak_mb"] = target.proc.memory_mb()[1]

    def soak(self, gateway: targets.Target, requests: int) -> dict:
        """RSS of the gateway worker before and after ``requests`` more whole answers (c=32) and a
        twentieth as many streams (c=8)."""
        self.say(f"soak: {requests:,} requests and {max(1, requests // 20):,} streams through {gateway.name}")
        rss_before = gateway.proc.memory_mb()[0]
        whole = self.load.run_count(gateway.url, gateway.body(), gateway.headers, 32, requests)
        rss_mid = gateway.proc.memory_mb()[0]
        streams = self.load.run_count(gateway.stream_url, gateway.body(True), gateway.headers, 8,
                                      max(1, requests // 20), stream=True)
        time.sleep(1.0)
        rss_after = gateway.proc.memory_mb()[0]
        return {"requests": whole["requests"], "streams": streams["requests"],
                "errors": whole["errors"] + streams["errors"], "rss_before_mb": rss_before,
                "rss_after_requests_mb": rss_mid, "rss_after_mb": rss_after,
                "growth_mb": round(rss_after - rss_before, 1)}

    def workers_scaling(self) -> dict:
        """c=32 req/s of ``--workers 2`` over one worker, the load and upstream keeping their own core(s).

        ``quota`` (needs a writable cgroup ``cpu`` controller, i.e. root): every worker runs on the
        proxy core in a cgroup of its own capped at ``--worker-share`` of a core, so two workers have
        twice the CPU of one, each its own slice, and the load's core stays the load's.
        ``idle-class`` (otherwise): one worker on the proxy core; with two, the second runs on the
        load's core in SCHED_IDLE and gets only what the load leaves over (the ratio understates).
        Both report each worker's CPU (the balance) and ``projected_ratio``: two times the requests per
        CPU-second of two workers over one worker's.
        """
        if not (self.proxy_cpus and self.load_cpus):
            return {"skipped": "needs taskset and at least two cores"}
        mode = "quota" if CpuQuota.available() else "idle-class"
        results: dict[int, dict] = {}
        for workers in (1, 2):
            target = self._track(targets.gateway(self.work, self.proxy_cpus if mode == "quota" else None, self.info,
                                                 workers=workers, name=f"gateway-w{workers}"))
            targets.wait_probe(target)
            deadline = time.monotonic() + 30
            while len(self._workers(target, workers)) < workers and time.monotonic() < deadline:
                time.sleep(0.2)
            pids = self._workers(target, workers)
            for index, pid in enumerate(pids):
                if mode == "quota":
                    quota = CpuQuota(f"switchyard-bench-w{workers}-{index}", self.args.worker_share)
                    quota.add(pid)
                    self.quotas.append(quota)
                else:
                    pin(pid, self.proxy_cpus if index == 0 else self.load_cpus, idle_class=index > 0)
            self.measure(target, "warmup", 32, False, duration=self.args.warmup)
            runs = []
            for _ in range(self.args.rounds):
                time.sleep(0.3)  # a quota's period ends: no worker starts the run throttled
                before = [process_cpu_seconds(pid) for pid in pids]
                result = self.measure(target, "c32", 32, False)
                used = [process_cpu_seconds(pid) - b for pid, b in zip(pids, before)]
                runs.append({"rps": result["rps"], "worker_cpu_s": [round(u, 2) for u in used],
                             "requests": result["requests"], "seconds": result["seconds"]})
            runs.sort(key=lambda r: r["rps"])
            results[workers] = {"runs": runs, **runs[len(runs) // 2]}
            self.say(f"--workers {workers} ({mode}): c=32 {results[workers]['rps']:,.0f} req/s "
                     f"(runs: {[r['rps'] for r in runs]}; worker CPU s: {[r['worker_cpu_s'] for r in runs]})")
            target.proc.stop()
        per_cpu = {w: r["requests"] / max(sum(r["worker_cpu_s"]), 1e-9) for w, r in results.items()}
        method = (f"each worker in its own cgroup capped at {self.args.worker_share} core, on the proxy core(s) "
                  f"{self.proxy_cpus}; load and upstream alone on {self.load_cpus}" if mode == "quota" else
                  "1 worker on the proxy core; 2 workers: one on the proxy core, one on the load core in SCHED_IDLE "
                  "(it gets only what the load and upstream leave over)")
        return {"mode": mode, "method": method, "rps_1_worker": results[1]["rps"], "rps_2_workers": results[2]["rps"],
                "ratio": round(results[2]["rps"] / results[1]["rps"], 3),
                "requests_per_cpu_second": {w: round(v) for w, v in per_cpu.items()},
                "projected_ratio": round(2 * per_cpu[2] / per_cpu[1], 3), "detail": results}

    @staticmethod
    def _workers(target: targets.Target, workers: int) -> list[int]:
        if workers == 1:
            return [target.proc.pid]
        pids = []
        for pid in target.proc.children():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline and b"taskset" not in cmdline:
                pids.append(pid)
        return pids

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        for quota in self.quotas:
            quota.remove()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def _litellm_version(binary: str) -> str | None:
    import subprocess

    python = Path(binary).parent / "python"
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or None
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    soak = workers = None
    try:
        all_targets = bench.start()
        bench.rounds(all_targets)
        gateway = next((t for t in all_targets if t.name == "gateway"), None)
        if args.soak and gateway is not None:
            soak = bench.soak(gateway, args.soak)
            bench.say(f"soak: RSS {soak['rss_before_mb']} MB -> {soak['rss_after_mb']} MB")
        if args.workers_scaling:
            workers = bench.workers_scaling()
    finally:
        bench.stop()
    median = report.medians(bench.runs)
    ratios = report.ratios(median, bench.memory)
    verdicts = report.verdicts(ratios, soak, workers)
    order = [t.name for t in all_targets]
    print("\n" + report.table(median, bench.memory, order) + "\n")
    for name, value in ratios.items():
        print(f"  {name}: {value}")
    for name, value in verdicts.items():
        print(f"  target {name}: {value}")
    result = {
        "meta": {"started": started.isoformat(timespec="seconds"), "command": "python -m bench " + " ".join(
            sys.argv[1:] if argv is None else argv), "python": platform.python_version(),
                 "machine": platform.machine(), "cpus": os.cpu_count(), "load_tool": bench.load.tool,
                 "proxy_cpus": bench.proxy_cpus, "load_cpus": bench.load_cpus, "rounds": args.rounds,
                 "duration_s": args.duration, **bench.info},
        "median": median, "memory": bench.memory, "ratios": ratios, "targets": verdicts,
        "soak": soak, "workers": workers, "runs": bench.runs,
    }
    out = args.out or ROOT / "bench" / "results" / f"{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0
