"""Load generation: wrk (Debian's package) when installed, else ``bench.pyload``; streams always pyload.

Both run as their own process, pinned to the load cores, and report the same figures: requests,
errors, seconds, req/s, p50 and p99 latency in ms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open("%(body)s", "rb"):read()
wrk.headers["Content-Type"] = "application/json"
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%%d,"duration_us":%%d,"errors":%%d,"bad_status":%%d,'
    .. '"p50_us":%%f,"p99_us":%%f}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""

class LoadGenerator:
    def __init__(self, work: Path, cpus: list[int] | None, force_python: bool = False) -> None:
        self.work = work
        self.cpus = cpus
        self.wrk = None if force_python else shutil.which("wrk")
        self._bodies: dict[bytes, Path] = {}

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "python"

    def _body_file(self, body: bytes) -> Path:
        if body not in self._bodies:
            path = self.work / f"body{len(self._bodies)}.json"
            path.write_bytes(body)
            self._bodies[body] = path
        return self._bodies[body]

    def _pin(self, command: list[str]) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, self.cpus)), *command] if self.cpus else command

    def run(self, url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float,
            stream: bool = False, limit: int = 0) -> dict:
        """One run of ``duration`` seconds (or until ``limit`` requests, which wrk cannot do: see
        ``run_count``)."""
        if stream or not self.wrk:
            return self._python(url, body, headers, concurrency, duration, limit)
        return self._wrk(url, body, headers, concurrency, duration)

    def run_count(self, url: str, body: bytes, headers: dict[str, str], concurrency: int, count: int,
                  stream: bool = False) -> dict:
        """At least ``count`` requests, as runs of at most 10 s (wrk stops on time, not on a count)."""
        if stream or not self.wrk:
            return self._python(url, body, headers, concurrency, 60 + count / 50, count)  # bounded all the same
        done = errors = 0
        seconds, rate = 10.0, None
        while done < count:
            if rate:
                seconds = min(10.0, max(1.0, (count - done) / rate))
            result = self._wrk(url, body, headers, concurrency, seconds)
            done, errors = done + result["requests"], errors + result["errors"]
            rate = result["rps"] or 1.0
            if not result["requests"]:
                break
        return {"tool": "wrk", "requests": done, "errors": errors}

    def _python(self, url, body, headers, concurrency, duration, limit) -> dict:
        command = [sys.executable, "-m", "bench.pyload", "--url", url, "--body-file", str(self._body_file(body)),
                   "--concurrency", str(concurrency), "--duration", str(duration), "--limit", str(limit)]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        out = subprocess.run(self._pin(command), capture_output=True, text=True, timeout=duration + 120,
                             cwd=Path(__file__).resolve().parent.parent)
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _wrk(self, url, body, headers, concurrency, duration) -> dict:
        script = self.work / f"wrk-{concurrency}.lua"
        header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        script.write_text(WRK_SCRIPT % {"body": self._body_file(body), "headers": header_lines})
        seconds = max(1, int(round(duration)))
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
        out = subprocess.run(self._pin(command), capture_output=True, text=True, timeout=seconds + 120)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
        raw = json.loads(line[len("BENCH_JSON "):])
        secs = raw["duration_us"] / 1e6
        good = raw["requests"] - raw["bad_status"]
        return {"tool": "wrk", "requests": good, "errors": raw["errors"] + raw["bad_status"],
                "seconds": round(secs, 3), "rps": round(good / secs, 1),
                "p50_ms": round(raw["p50_us"] / 1000, 4), "p99_ms": round(raw["p99_us"] / 1000, 4)}
