"""--workers N: every worker serves, and /metrics aggregates all of them (multiprocess mode)."""

from __future__ import annotations

import re

import httpx
import openai

from tests.harness import run_gateway

CONFIG = {"providers": {"mock": {"type": "mock"}},
          "models": {"m": {"deployments": [{"provider": "mock", "model": "x"}]}}}


def test_two_workers_share_metrics():
    with run_gateway(CONFIG, workers=2) as gw:
        assert "per worker process" in gw.logs()  # memory state with N workers is announced
        total = 60
        for _ in range(total):
            # a new connection each time so both workers get requests
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0,
                                   http_client=None)
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            client.close()
        text = httpx.get(gw.url + "/metrics", timeout=10).text
        match = re.search(r'switchyard_requests_total\{model="m",provider="mock",status="200"\} (\d+(?:\.\d+)?)', text)
        assert match, text[:2000]
        assert float(match.group(1)) == total
