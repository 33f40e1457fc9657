"""Egress through an HTTP forward proxy, for ``gateway.http1``.

Which proxy a connection goes through is decided once per (scheme, host, port) by ``ProxyRules``:

- a provider's ``proxy:`` key (``ProxyRules.fixed``): every connection of that provider, loopback too;
- else the environment (``ProxyRules.from_env``): ``HTTPS_PROXY`` for https upstreams, ``HTTP_PROXY`` for
  http ones (the lower-case names win, as in curl and httpx), except hosts matched by ``NO_PROXY`` and
  loopback hosts, which are always reached directly.

``open_tunnel`` makes the https case: ``CONNECT host:port`` to the proxy, then TLS to the upstream host over
the same socket. An http upstream needs no tunnel: ``gateway.http1`` sends the request in absolute form
(``POST http://host:port/path``) to the proxy.

Only ``http://`` proxy URLs are supported. Proxy credentials live in ``Proxy.authorization`` (not in its
repr) and in the headers sent to the proxy; they are in no error message: ``ProxyError`` says what went
wrong with the proxy, ``redact`` hides the userinfo of a URL quoted in a config error.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

MAX_ANSWER = 16 * 1024  # the longest answer head a proxy may send to CONNECT
SHAPE = "http://[user:pass@]host:port"


class ProxyError(Exception):
    """The proxy could not be used: unreachable, refused the tunnel, or an unusable proxy URL."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # "Basic ..." for Proxy-Authorization

    def header_lines(self) -> str:
        return f"Proxy-Authorization: {self.authorization}\r\n" if self.authorization else ""


def parse_proxy_url(text: str, *, assume_http: bool = False) -> Proxy:
    """``http://[user:pass@]host[:port]`` (port 80 when absent). ``assume_http``: a bare ``host:port``
    (as the environment variables allow) is taken as http. Raises ``ValueError`` without the credentials."""
    value = text.strip()
    if assume_http and "://" not in value:
        value = "http://" + value
    problem = f"must be an http:// proxy URL ({SHAPE}), got {redact(text)!r}"
    try:
        parts = urlsplit(value)
        port = parts.port or 80
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme.lower() != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(problem)
    authorization = None
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(userinfo.encode("utf-8")).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def redact(url: str) -> str:
    """``url`` with its userinfo (``user:pass@``) replaced by ``***@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc = rest[:end]
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{rest[end:]}"


@dataclass(frozen=True, slots=True)
class ProxyRules:
    """Which proxy (or none) a connection to ``scheme://host:port`` goes through."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()  # lower-case NO_PROXY entries
    from_environment: bool = False  # then loopback hosts and NO_PROXY go direct
    # scheme -> why its environment variable is unusable: those connections fail, they never go direct
    problems: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def fixed(cls, proxy: Proxy) -> ProxyRules:
        return cls(http=proxy, https=proxy)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProxyRules | None:
        """The rules the environment sets, or None when it names no proxy."""
        found: dict[str, Proxy | None] = {"http": None, "https": None}
        problems = {}
        for scheme in found:
            name, value = _env_value(env, f"{scheme}_proxy")
            if value:
                try:
                    found[scheme] = parse_proxy_url(value, assume_http=True)
                except ValueError:
                    problems[scheme] = f"{name} is not an http:// proxy URL"
        if not problems and found["http"] is None and found["https"] is None:
            return None
        no_proxy = tuple(e.strip().lower() for e in _env_value(env, "no_proxy")[1].split(",") if e.strip())
        return cls(http=found["http"], https=found["https"], no_proxy=no_proxy, from_environment=True,
                   problems=problems)

    def choose(self, scheme: str, host: str, port: int) -> Proxy | None:
        """Raises ``ProxyError`` when the environment's proxy for ``scheme`` is unusable."""
        if self.from_environment and (_is_loopback(host) or _excluded(self.no_proxy, host, port)):
            return None
        if scheme in self.problems:
            raise ProxyError(self.problems[scheme])
        return self.https if scheme == "https" else self.http


def proxy_rules(setting: str | None, env: Mapping[str, str]) -> ProxyRules | None:
    """A provider's rules: its ``proxy`` key (a URL; ``""``: never) or, when it has none, the environment's."""
    if setting is None:
        return ProxyRules.from_env(env)
    return ProxyRules.fixed(parse_proxy_url(setting)) if setting else None


def _env_value(env: Mapping[str, str], lower: str) -> tuple[str, str]:
    for name in (lower, lower.upper()):
        value = env.get(name, "").strip()
        if value:
            return name, value
    return lower.upper(), ""


def _is_loopback(host: str) -> bool:
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _excluded(entries: tuple[str, ...], host: str, port: int) -> bool:
    host = host.rstrip(".").lower().strip("[]")
    for entry in entries:
        if entry == "*":
            return True
        name, entry_port = _split_entry(entry)
        if entry_port is not None and entry_port != port:
            continue
        if _host_matches(name, host):
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port``, ``v6``, ``10.0.0.0/8`` -> (host, port or None)."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        name, _, port = entry.partition(":")
    else:
        name, port = entry, ""
    return name, int(port) if port.isdigit() else None


def _host_matches(entry: str, host: str) -> bool:
    if "/" in entry:  # a network: 10.0.0.0/8
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    domain = entry.lstrip("*").lstrip(".").rstrip(".")
    return bool(domain) and (host == domain or host.endswith("." + domain))


# -- the CONNECT tunnel -----------------------------------------------------------------------------

class _ConnectAnswer(asyncio.Protocol):
    """Reads the proxy's answer head to CONNECT, then stops reading: the socket is handed to TLS."""

    def __init__(self, answered: asyncio.Future) -> None:
        self.answered = answered
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.transport.pause_reading()  # type: ignore[union-attr]  # what follows is TLS
            self.answered.set_result(bytes(self.buffer))
        elif len(self.buffer) > MAX_ANSWER:
            self.answered.set_exception(ProxyError("proxy sent an oversized answer to CONNECT"))

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ProxyError("proxy closed the connection during CONNECT"))


async def open_tunnel(loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int,
                      protocol: asyncio.Protocol, tls: ssl.SSLContext) -> asyncio.Transport:
    """A TLS connection to ``host:port`` (SNI and verification for ``host``) through ``proxy``, read by
    ``protocol``. The caller bounds the time. Raises ``ProxyError``, or ``OSError`` for TLS failures."""
    answered = loop.create_future()
    try:
        transport, _ = await loop.create_connection(lambda: _ConnectAnswer(answered), proxy.host, proxy.port)
    except OSError as exc:
        raise ProxyError(f"proxy {type(exc).__name__}") from None
    try:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        transport.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{proxy.header_lines()}\r\n".encode())
        answer = await answered
        head, _, extra = answer.partition(b"\r\n\r\n")
        status = _status(head)
        if not 200 <= status < 300:
            raise ProxyError(f"proxy answered {status} to CONNECT")
        if extra:
            raise ProxyError("proxy sent data before the TLS handshake")
        tunnel = await loop.start_tls(transport, protocol, tls, server_hostname=host)
    except BaseException:
        transport.close()
        raise
    if tunnel is None:  # the proxy closed the connection during the TLS handshake
        raise ProxyError("proxy closed the tunnel")
    protocol.connection_made(tunnel)  # some loops call it during start_tls, some do not: it is idempotent
    return tunnel


def _status(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProxyError("proxy sent a malformed answer to CONNECT")
    return int(parts[1])
