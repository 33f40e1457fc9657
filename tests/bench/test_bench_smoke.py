"""The benchmark in its smallest mode: one round, one second per run, the Python load generator and
the Python upstream (so it needs neither wrk nor nginx), and the JSON result carries every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("rps", "p50_ms", "p99_ms", "errors")


def run_bench(targets: str, out: Path) -> subprocess.CompletedProcess[str]:
    """The benchmark at its smallest over ``targets``, its JSON result written to ``out``; it must succeed."""
    command = [sys.executable, "-m", "bench", "--rounds", "1", "--duration", "1", "--warmup", "0.5",
               "--quiet-wait", "0", "--python-load", "--no-nginx", "--targets", targets, "--out", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=55)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.timeout(60)
def test_bench_tiny_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = run_bench("direct,floor,gateway", out)
    assert "load generator: python" in run.stdout and "upstream: python" in run.stdout

    result = json.loads(out.read_text())
    assert result["meta"]["load_tool"] == "python" and result["meta"]["upstream"] == "python"
    for target in ("direct", "floor", "gateway"):
        for scenario in ("c1", "c32", "stream8"):
            figures = result["median"][target][scenario]
            for name in FIGURES:
                assert name in figures, (target, scenario, name)
            assert figures["rps"] > 0 and figures["errors"] == 0, (target, scenario, figures)
        assert result["median"][target]["stream8"]["ttft_p50_ms"] > 0
    for proxy in ("floor", "gateway"):
        assert result["median"][proxy]["c32"]["cpu_ms_per_req"] > 0
        memory = result["memory"][proxy]
        assert 0 < memory["rss_idle_mb"] <= memory["rss_peak_mb"]
    ratios = result["ratios"]
    assert ratios["c32_rps_gateway_over_floor"] > 0
    assert ratios["c1_p50_added_over_direct_ms"] is not None
    assert ratios["ttft_p50_added_over_direct_ms"] is not None
    assert set(result["targets"]) >= {"c32 >= 60% of floor", "idle RSS < 80 MB"}
    assert "| gateway |" in run.stdout  # the table


@pytest.mark.timeout(60)
def test_bench_gateway_redis_target(tmp_path: Path) -> None:
    """The gateway-redis target (state.backend: redis, no limits) runs next to the memory one."""
    out = tmp_path / "redis.json"
    run_bench("direct,gateway-redis", out)
    figures = json.loads(out.read_text())["median"]["gateway-redis"]["c32"]
    assert figures["rps"] > 0 and figures["errors"] == 0
