"""Small raw-ASGI helpers: path normalisation, body reading, JSON and error responses."""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

import orjson

from gateway.errors import GatewayError, InvalidRequest, RequestTooLarge

JSON_HEADERS = [(b"content-type", b"application/json")]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def normalize_path(path: str) -> str:
    """Collapse doubled slashes and dot segments, drop a trailing slash: auth and routing share this."""
    if "//" in path or "/." in path or (path.endswith("/") and len(path) > 1):
        path = posixpath.normpath("/" + path.lstrip("/"))
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
    return path


def request_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def request_id_from(headers: dict[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return os.urandom(16).hex()  # 32 random hex digits, like uuid4().hex at a fifth of the cost


async def read_body(receive, headers: dict[str, str], limit: int) -> bytes:
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClientGone(Exception):
    """The client disconnected before its request was read."""


def parse_json_body(body: bytes, headers: dict[str, str]) -> Any:
    content_type = headers.get("content-type", "")
    if content_type and "json" not in content_type.lower():
        raise InvalidRequest(f"Content-Type must be application/json, got '{content_type[:100]}'")
    if not body:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc.args[0][:120]})") from None


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_bytes(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(payload), JSON_HEADERS + encode_headers(headers or {}))


async def send_error(send, error: GatewayError, headers: dict[str, str] | None = None) -> None:
    merged = {**(headers or {}), **error.response_headers()}
    await send_bytes(send, error.status, error.body(), JSON_HEADERS + encode_headers(merged))
