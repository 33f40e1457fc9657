"""The routing admin API in process: who may call it, list shapes, errors, reload without a file."""

from __future__ import annotations

import asyncio

import httpx

from gateway.app import Switchyard
from gateway.auth import Authenticator, Identity
from gateway.config import parse_config

MASTER = "sk-master-admin-routing-test"


def app_with_virtual_key():
    config = parse_config({
        "server": {"master_key": MASTER},
        "providers": {"m": {"type": "mock"}},
        "models": {"chat": {"deployments": [{"id": "d1", "provider": "m", "model": "x"}]}},
    })
    app = Switchyard(config=config)

    async def lookup(digest: str):
        return Identity("virtual", name="team-key")
    return app, lookup


def test_admin_routes_need_the_master_key_and_answer_lists():
    app, lookup = app_with_virtual_key()

    async def go():
        await app.startup()
        app.auth = Authenticator(MASTER, virtual_lookup=lookup)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                master = {"authorization": f"Bearer {MASTER}"}
                virtual = {"authorization": "Bearer sk-some-virtual-key"}
                for method, path in (("GET", "/admin/deployments"), ("GET", "/admin/providers"),
                                     ("POST", "/admin/reload"), ("POST", "/admin/deployments/d1/circuit")):
                    denied = await client.request(method, path, headers=virtual, json={"state": "open"})
                    assert denied.status_code == 403, path
                    assert denied.json()["error"]["code"] == "permission_denied"
                listing = (await client.get("/admin/deployments", headers=master)).json()
                assert listing["object"] == "list" and [d["id"] for d in listing["data"]] == ["d1"]
                providers = (await client.get("/admin/providers", headers=master)).json()
                assert providers["object"] == "list" and providers["data"][0]["status"] == "healthy"
                not_json = await client.post("/admin/deployments/d1/circuit", headers=master, content=b"[1]")
                assert not_json.status_code == 400
                # started from an in-memory config: nothing to re-read
                refused = await client.post("/admin/reload", headers=master)
                assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_config"
                wrong = await client.get("/admin/reload", headers=master)
                assert wrong.status_code == 405
        finally:
            await app.shutdown()
    asyncio.run(go())
