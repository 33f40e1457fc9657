"""In-process checks of the ASGI app (fast): readiness without config, path normalisation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.app import Switchyard
from gateway.http import normalize_path


def request(app, method, path, **kwargs):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.request(method, path, **kwargs)
    return asyncio.run(go())


def test_ready_is_503_without_a_valid_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: nope}\n")
    app = Switchyard(config_path=str(bad))
    asyncio.run(app.startup())
    ready = request(app, "GET", "/health/ready")
    assert ready.status_code == 503
    assert ready.json()["errors"] == ["server.port: must be an integer, got 'nope'"]
    assert request(app, "GET", "/health/live").status_code == 200
    failed = request(app, "POST", "/v1/chat/completions", json={})
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "config_error"


@pytest.mark.parametrize("raw,expected", [
    ("/v1/chat/completions", "/v1/chat/completions"), ("//v1//chat/completions", "/v1/chat/completions"),
    ("/v1/chat/completions/", "/v1/chat/completions"), ("/v1/./models/../chat/completions", "/v1/chat/completions"),
    ("/", "/"), ("/health/../v1/models", "/v1/models"), ("/../../v1/models", "/v1/models"),
    ("/v1/models/org/model", "/v1/models/org/model"),
])
def test_normalize_path(raw, expected):
    assert normalize_path(raw) == expected
