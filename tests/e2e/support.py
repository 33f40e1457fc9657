"""What the end-to-end suites share: the module's gateway process and an openai SDK client as pytest
fixtures, the frame of a gateway config, and plain-HTTP helpers that send a bearer key.

A suite with one fake upstream starts like this (each fixture takes the name it is assigned to)::

    upstream = served_fixture(lambda: CohereFake(valid_keys={UPSTREAM_KEY}))  # tests/fakes/server.py
    gw = gateway_fixture(config)   # the gateway process for the module, run with config(upstream.url)
    client = client_fixture()      # openai.OpenAI on gw with the master key, closed after each test
    fake = fresh_fixture("upstream", autouse=True)  # the upstream, reset before every test

Every call is bounded in time (``TIMEOUT``) and goes to 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.harness import GatewayProcess, run_gateway

TIMEOUT = 20  # seconds, for every request a test makes to the gateway
UPSTREAM_TIMEOUT = {"connect": 2, "read": 5, "total": 30}  # the gateway's timeouts towards a fake


# -- configs ------------------------------------------------------------------------------------------

def gateway_config(providers: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """A config with the master key and circuit breakers that never open: the suites provoke upstream
    errors on purpose and check how each one is mapped (tests/resilience tests the breakers)."""
    return {
        "server": {"master_key": MASTER_KEY},
        "circuit_breaker": {"failure_threshold": 1000, "min_requests": 1000},
        "providers": providers,
        "models": models,
    }


def one_deployment(provider: str, model: str) -> dict[str, Any]:
    """A model group of one deployment, without retries."""
    return {"retries": 0, "deployments": [{"provider": provider, "model": model}]}


# -- fixtures -----------------------------------------------------------------------------------------

def gateway_fixture(make_config: Callable[[str], dict[str, Any]], **run_options: Any) -> Any:
    """A module-scoped fixture: the gateway process run with ``make_config(upstream.url)`` (and
    ``run_gateway``'s options, e.g. ``env``) for the module's tests; it needs an ``upstream`` fixture."""

    @pytest.fixture(scope="module")
    def gateway(upstream: Any) -> Iterator[GatewayProcess]:
        with run_gateway(make_config(upstream.url), **run_options) as process:
            yield process

    return gateway


def client_fixture() -> Any:
    """A fixture: an openai SDK client of ``gw`` with the master key (``sdk_client``), closed after the test."""

    @pytest.fixture
    def client(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
        with sdk_client(gw) as sdk:
            yield sdk

    return client


@contextmanager
def sdk_client(gw: GatewayProcess, key: str = MASTER_KEY) -> Iterator[openai.OpenAI]:
    """The openai SDK on the gateway's ``/v1``: no retries of its own (a test sees every answer), bounded."""
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=TIMEOUT) as sdk:
        yield sdk


# -- plain HTTP ---------------------------------------------------------------------------------------

def bearer(key: str | None = MASTER_KEY) -> dict[str, str]:
    """The authorization header for ``key``; none for None."""
    return {"authorization": f"Bearer {key}"} if key else {}


def post(gw: GatewayProcess, path: str, body: Any, key: str | None = MASTER_KEY) -> httpx.Response:
    """POST ``body`` as JSON with ``key`` as the bearer key (None: no key)."""
    return httpx.post(gw.url + path, json=body, headers=bearer(key), timeout=TIMEOUT)


def admin(gw: GatewayProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request with the master key (``kwargs`` go to ``httpx.request``, e.g. ``json``)."""
    return httpx.request(method, gw.url + path, headers=bearer(MASTER_KEY), timeout=TIMEOUT, **kwargs)


def read_stream(gw: GatewayProcess, body: dict[str, Any],
                headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[str]]:
    """POST ``body`` to ``/v1/chat/completions`` with the master key and read the answer to its end:
    the (closed) response and its non-empty lines."""
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=TIMEOUT,
                      headers={**bearer(MASTER_KEY), **(headers or {})}) as response:
        lines = [line for line in response.iter_lines() if line]
    return response, lines
