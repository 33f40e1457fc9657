"""Profile the gateway under the benchmark's load with py-spy, and print where the time goes.

    python -m bench.profile [--scenario c32|c1|stream8] [--duration 15] [--svg FILE] [--top 30]
                            [--target gateway|floor]

Starts the same upstreams and gateway as ``python -m bench`` (pinned the same way), attaches
``py-spy record`` (``pip install py-spy``) to the worker while the load runs, then prints the
functions with the most samples, by own time and by inclusive time, from py-spy's collapsed stacks
(and writes a flame graph with ``--svg``).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import targets
from bench.load import LoadGenerator
from bench.procs import cpu_plan
from bench.report import SCENARIOS


def summarize(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "own time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/module.py:123)"; keep the function, file and line
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])}:{line})" if parts else name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=[s[0] for s in SCENARIOS], default="c32")
    p.add_argument("--target", choices=("gateway", "floor"), default="gateway")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    p.add_argument("--svg", type=Path, help="also write a flame graph here")
    p.add_argument("--top", type=int, default=35)
    p.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    p.add_argument("--native", action="store_true", help="include native (C) frames")
    args = p.parse_args(argv)
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    _, concurrency, stream = next(s for s in SCENARIOS if s[0] == args.scenario)
    work = Path(tempfile.mkdtemp(prefix="switchyard-profile-"))
    proxy_cpus, load_cpus = cpu_plan()
    procs = []
    try:
        ups, info = targets.start_upstreams(work, load_cpus, True, 20, 2.0)
        procs += ups
        make = targets.gateway if args.target == "gateway" else targets.floor
        target = make(work, proxy_cpus, info)
        procs.append(target.proc)
        targets.wait_probe(target)
        load = LoadGenerator(work, load_cpus)
        url = target.stream_url if stream else target.url
        load.run(url, target.body(stream), target.headers, concurrency, 3, stream=stream)  # warm-up
        collapsed = work / "profile.txt"
        command = ["py-spy", "record", "--pid", str(target.proc.pid), "--rate", str(args.rate), "--format", "raw",
                   "--output", str(collapsed), "--duration", str(int(args.duration)), "--nonblocking"]
        if args.native:
            command.append("--native")
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result = load.run(url, target.body(stream), target.headers, concurrency, args.duration, stream=stream)
        spy.wait(timeout=args.duration + 60)
        print(f"{args.target} {args.scenario}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']} ms")
        print(summarize(collapsed, args.top))
        if args.raw:
            shutil.copy(collapsed, args.raw)
        if args.svg:
            flame = ["py-spy", "record", "--pid", str(target.proc.pid), "--rate", str(args.rate), "--output",
                     str(args.svg), "--duration", "5", "--nonblocking"]
            spy = subprocess.Popen(flame, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            load.run(url, target.body(stream), target.headers, concurrency, 5, stream=stream)
            spy.wait(timeout=60)
            print(f"flame graph: {args.svg}")
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
