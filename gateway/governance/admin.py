"""Admin API for governance (master key only): keys, spend and the audit trail.

    POST   /admin/keys                  create a key (YAML fields); answers its plaintext ``key`` once
    GET    /admin/keys                  list keys (no secrets, no hashes)
    GET    /admin/keys/{name}           one key, with its budget spend this period
    POST   /admin/keys/{name}/rotate    a new plaintext ``key``; the old one stops working
    DELETE /admin/keys/{name}           revoke; answers once every listening replica has dropped it
    GET    /admin/spend?group_by=key|team|model|provider&from=YYYY-MM-DD&to=YYYY-MM-DD
    GET    /admin/audit?key=&model=&since=ISO-8601&limit=

Keys from YAML answer 409 to create (same name), rotate and delete.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from gateway.admin import route
from gateway.config_reader import Section
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.exchange import Exchange
from gateway.governance.audit import parse_iso
from gateway.governance.config import KeySpec, key_spec, sha256_hex
from gateway.governance.cost import usd
from gateway.governance.spend import GROUPS
from gateway.governance.sync import rotated
from gateway.http import parse_json_body, read_body, send_json

if TYPE_CHECKING:
    from gateway.app import Switchyard

KEY_PREFIX = "sk-sy-"
MAX_SPEND_DAYS = 366
MAX_AUDIT_LIMIT = 1000


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


def _yaml_conflict(gw: Switchyard, name: str) -> None:
    if name in gw.governance.keys.static_names:
        raise Conflict(f"key '{name}' is defined in the config file; change it there")


async def _key_view(gw: Switchyard, spec: KeySpec) -> dict[str, Any]:
    view = spec.public()
    view["object"] = "key"
    tables = gw.governance.tables_for(gw.runtime.config)
    _, budgets = tables.limits_for(gw.governance.keys.by_name(spec.name))
    key_budgets = [b for b in budgets if b.kind == "key"]
    if key_budgets:
        spent = await gw.governance.limiter.spent(key_budgets)
        view["budget_spend_usd"] = usd(spent[0])
    return view


@route("POST", r"/admin/keys")
async def create_key(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    body = parse_json_body(await read_body(receive, headers, 1 << 20), headers)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if "key_sha256" in body:
        raise InvalidRequest("key_sha256 cannot be given here; the gateway makes the key (or send 'key')",
                             param="key_sha256")
    plaintext = str(body.pop("key", None) or new_key())
    errors: list[str] = []
    spec = key_spec(Section({**body, "key_sha256": sha256_hex(plaintext)}, "body", errors), source="admin",
                    created_at=int(time.time()))
    if spec is None:
        raise InvalidRequest("; ".join(e.removeprefix("body.") for e in errors))
    _yaml_conflict(gw, spec.name)
    if await gw.governance.keys.lookup(spec.key_sha256) is not None or gw.auth.is_master_digest(spec.key_sha256):
        raise Conflict("that key is already in use")
    acknowledged = await gw.governance.created.create(spec)
    view = await _key_view(gw, spec)
    await send_json(send, 200, {**view, "key": plaintext, "replicas_acknowledged": acknowledged}, ex.headers())


@route("GET", r"/admin/keys")
async def list_keys(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    data = [{**k.spec.public(), "object": "key"} for k in gw.governance.keys.all()]
    await send_json(send, 200, {"object": "list", "data": data}, ex.headers())


def _existing(gw: Switchyard, name: str) -> KeySpec:
    key = gw.governance.keys.by_name(name)
    if key is None:
        raise NotFound(f"no key named '{name}'", param="name")
    return key.spec


@route("GET", r"/admin/keys/(?P<name>[^/]+)")
async def get_key(gw: Switchyard, scope, receive, send, ex: Exchange, headers, name: str) -> None:
    await send_json(send, 200, await _key_view(gw, _existing(gw, name)), ex.headers())


@route("POST", r"/admin/keys/(?P<name>[^/]+)/rotate")
async def rotate_key(gw: Switchyard, scope, receive, send, ex: Exchange, headers, name: str) -> None:
    _yaml_conflict(gw, name)
    plaintext = new_key()
    spec, acknowledged = await gw.governance.created.replace(name, lambda s: rotated(s, sha256_hex(plaintext)))
    view = await _key_view(gw, spec)
    await send_json(send, 200, {**view, "key": plaintext, "replicas_acknowledged": acknowledged}, ex.headers())


@route("DELETE", r"/admin/keys/(?P<name>[^/]+)")
async def delete_key(gw: Switchyard, scope, receive, send, ex: Exchange, headers, name: str) -> None:
    _yaml_conflict(gw, name)
    acknowledged = await gw.governance.created.delete(name)
    await send_json(send, 200, {"object": "key", "name": name, "deleted": True,
                                "replicas_acknowledged": acknowledged}, ex.headers())


def _date(value: str | None, name: str, default: dt.date) -> dt.date:
    if not value:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a date as YYYY-MM-DD, got {value[:40]!r}", param=name) from None


@route("GET", r"/admin/spend")
async def spend(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    params = query(scope)
    group_by = params.get("group_by") or "key"
    if group_by not in GROUPS:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUPS)}", param="group_by")
    today = dt.datetime.now(dt.timezone.utc).date()
    end = _date(params.get("to"), "to", today)
    start = _date(params.get("from"), "from", end.replace(day=1))
    if start > end:
        raise InvalidRequest("'from' must not be after 'to'", param="from")
    if (end - start).days >= MAX_SPEND_DAYS:
        raise InvalidRequest(f"a report covers at most {MAX_SPEND_DAYS} days", param="from")
    report = await gw.governance.ledger.report(group_by, start, end)
    await send_json(send, 200, report, ex.headers())


@route("GET", r"/admin/audit")
async def audit(gw: Switchyard, scope, receive, send, ex: Exchange, headers) -> None:
    params = query(scope)
    log = gw.governance.audit
    if not log:
        raise NotFound("no audit sink is configured (audit.sinks)")
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        raise InvalidRequest("'limit' must be an integer", param="limit") from None
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise InvalidRequest(f"'limit' must be between 1 and {MAX_AUDIT_LIMIT}", param="limit")
    since = None
    if params.get("since"):
        try:
            since = parse_iso(params["since"])
        except ValueError:
            raise InvalidRequest("'since' must be an ISO-8601 time, e.g. 2025-01-31T12:00:00Z", param="since") from None
    records = await log.read(params.get("key") or None, params.get("model") or None, since, limit)
    await send_json(send, 200, {"object": "list", "data": records}, ex.headers())
