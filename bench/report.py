"""Medians over rounds, the ratios and targets of the performance issue, and the printed table."""

from __future__ import annotations

import statistics

SCENARIOS = (("c1", 1, False), ("c32", 32, False), ("stream8", 8, True))
FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req", "ttft_p50_ms", "ttft_p99_ms", "spread_p50_ms", "errors", "background_cores")


def medians(runs: list[dict]) -> dict:
    """{target: {scenario: {figure: median over rounds}}}"""
    out: dict = {}
    for run in runs:
        figures = out.setdefault(run["target"], {}).setdefault(run["scenario"], {})
        for name in FIGURES:
            if run.get(name) is not None:
                figures.setdefault(name, []).append(run[name])
    for scenarios in out.values():
        for figures in scenarios.values():
            for name, values in figures.items():
                figures[name] = round(statistics.median(values), 4)
    return out


def _get(median: dict, target: str, scenario: str, figure: str):
    return median.get(target, {}).get(scenario, {}).get(figure)


def ratios(median: dict, memory: dict) -> dict:
    g = "gateway"
    out = {}

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    def diff(a, b):
        return round(a - b, 4) if a is not None and b is not None else None

    out["c32_rps_gateway_over_floor"] = ratio(_get(median, g, "c32", "rps"), _get(median, "floor", "c32", "rps"))
    out["c32_rps_gateway_over_litellm"] = ratio(_get(median, g, "c32", "rps"), _get(median, "litellm", "c32", "rps"))
    out["c1_p50_added_over_direct_ms"] = diff(_get(median, g, "c1", "p50_ms"), _get(median, "direct", "c1", "p50_ms"))
    out["ttft_p50_added_over_direct_ms"] = diff(_get(median, g, "stream8", "ttft_p50_ms"),
                                                _get(median, "direct", "stream8", "ttft_p50_ms"))
    out["stream_spread_gateway_over_direct"] = ratio(_get(median, g, "stream8", "spread_p50_ms"),
                                                     _get(median, "direct", "stream8", "spread_p50_ms"))
    out["idle_rss_mb"] = memory.get(g, {}).get("rss_idle_mb")
    return out


def verdicts(r: dict, soak: dict | None, workers: dict | None) -> dict:
    def check(value, ok) -> str:
        return "n/a" if value is None else ("met" if ok(value) else "MISSED")

    out = {
        "c32 >= 60% of floor": check(r["c32_rps_gateway_over_floor"], lambda v: v >= 0.6),
        "c32 >= 30x LiteLLM": check(r["c32_rps_gateway_over_litellm"], lambda v: v >= 30),
        "c1 p50 added < 0.6 ms": check(r["c1_p50_added_over_direct_ms"], lambda v: v < 0.6),
        "TTFT p50 within 1 ms of direct": check(r["ttft_p50_added_over_direct_ms"], lambda v: v <= 1.0),
        "chunks relayed as they come": check(r["stream_spread_gateway_over_direct"], lambda v: v >= 0.8),
        "idle RSS < 80 MB": check(r["idle_rss_mb"], lambda v: v < 80),
    }
    growth = soak.get("growth_mb") if soak else None
    out["no RSS growth over the soak"] = check(growth, lambda v: v < 2.0)
    scale = workers.get("ratio") if workers else None
    out["--workers 2 >= 1.6x"] = check(scale, lambda v: v >= 1.6)
    return out


def _fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:,.{digits}f}{unit}"


def table(median: dict, memory: dict, order: list[str]) -> str:
    head = ("| target | c=1 req/s | c=1 p50 | c=32 req/s | c=32 p99 | CPU per request (c=32) "
            "| stream TTFT p50 (c=8) | idle RSS | peak RSS |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for target in order:
        m = memory.get(target, {})
        lines.append("| " + " | ".join([
            target,
            _fmt(_get(median, target, "c1", "rps"), digits=0),
            _fmt(_get(median, target, "c1", "p50_ms"), " ms"),
            _fmt(_get(median, target, "c32", "rps"), digits=0),
            _fmt(_get(median, target, "c32", "p99_ms"), " ms"),
            _fmt(_get(median, target, "c32", "cpu_ms_per_req"), " ms", 3),
            _fmt(_get(median, target, "stream8", "ttft_p50_ms"), " ms"),
            _fmt(m.get("rss_idle_mb"), " MB", 0),
            _fmt(m.get("rss_peak_mb"), " MB", 0),
        ]) + " |")
    return "\n".join(lines)
