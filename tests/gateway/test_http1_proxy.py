"""gateway.http1 through a forward proxy (gateway.http1_proxy): CONNECT tunnels, absolute form, the rules."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from typing import ClassVar

import pytest

from gateway import http1
from gateway.errors import UpstreamConnectError
from gateway.http1_proxy import Proxy, ProxyRules, parse_proxy_url, proxy_rules, redact
from gateway.upstream import HttpClient
from providers.base import ProviderConfig, Timeout, UpstreamRequest
from tests.fakes.forward_proxy import FakeProxy
from tests.gateway.test_http1 import Upstream, keep_answering, pool, self_signed

SECRET = "pa:ss@w0rd"  # quoted in URLs as pa%3Ass%40w0rd
USERINFO = "alice:pa%3Ass%40w0rd"
VENDOR = "api.vendor.test"  # never resolved here: the proxy reaches every host on 127.0.0.1

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None
LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def run(coro, loop: str = "asyncio"):
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, 20))


def proxied_pool(proxy_url: str | None = None, rules: ProxyRules | None = None, **kw) -> http1.Pool:
    return pool(proxies=rules or ProxyRules.fixed(parse_proxy_url(proxy_url)), **kw)  # type: ignore[arg-type]


@pytest.fixture
def vendor_tls(tmp_path):
    """(server context recording SNI names, client context trusting it, the SNI names seen)."""
    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path, VENDOR)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    names: list[str] = []
    server.sni_callback = lambda sslobj, name, ctx: names.append(name)
    return server, ssl.create_default_context(cafile=cert), names


def vendor_url(up: Upstream) -> str:
    return f"https://{VENDOR}:{up.port}/v1/chat/completions?x=1"


@pytest.mark.parametrize("loop", LOOPS)
def test_https_through_a_connect_tunnel_with_sni_credentials_and_keep_alive(vendor_tls, loop):
    server_tls, client_tls, sni = vendor_tls

    async def go():
        async with Upstream(keep_answering, tls=server_tls) as up, FakeProxy(auth=("alice", SECRET)) as proxy:
            p = proxied_pool(proxy.url(USERINFO))
            p._ssl = client_tls
            for i in range(2):
                response = await p.request("POST", vendor_url(up), {"Authorization": "Bearer k"}, b"{}")
                assert response.status == 200 and await response.read() == b'{"ok":%d}' % i
            assert [(s.method, s.target) for s in proxy.seen] == [("CONNECT", f"{VENDOR}:{up.port}")]
            connect = proxy.seen[0].headers
            assert connect["host"] == f"{VENDOR}:{up.port}"
            assert connect["proxy-authorization"] == proxy.auth
            assert sni == [VENDOR] and up.connections == 1 and len(up.requests) == 2
            request_line = up.requests[0].split(b"\r\n")[0]
            assert request_line == b"POST /v1/chat/completions?x=1 HTTP/1.1"  # origin form inside the tunnel
            assert b"proxy-authorization" not in up.requests[0].lower()  # only the proxy sees the credentials
            await p.close()
    run(go(), loop)


def test_tunnel_to_an_untrusted_certificate_fails_like_a_direct_connection(vendor_tls):
    server_tls, _, _ = vendor_tls

    async def go():
        async with Upstream(keep_answering, tls=server_tls) as up, FakeProxy() as proxy:
            with pytest.raises(http1.ConnectError) as failed:
                await proxied_pool(proxy.url()).request("POST", vendor_url(up), {}, b"{}")
            assert "SSL" in failed.value.reason
    run(go())


class CountingRules(ProxyRules):
    """Counts the decisions asked for: the pool decides once per (scheme, host, port)."""

    asked: ClassVar[list[tuple[str, str, int]]] = []

    def choose(self, scheme: str, host: str, port: int) -> Proxy | None:
        self.asked.append((scheme, host, port))
        return ProxyRules.choose(self, scheme, host, port)


def test_http_through_the_proxy_in_absolute_form_and_keep_alive():
    async def go():
        async with Upstream(keep_answering) as up, FakeProxy(auth=("alice", SECRET)) as proxy:
            CountingRules.asked = []
            p = proxied_pool(rules=CountingRules.fixed(parse_proxy_url(proxy.url(USERINFO))))
            for i in range(2):
                response = await p.request("POST", up.url, {"Proxy-Authorization": "forged"}, b"{}")
                assert await response.read() == b'{"ok":%d}' % i
            assert [(s.method, s.target) for s in proxy.seen] == [("POST", up.url)] * 2
            assert all(s.headers["proxy-authorization"] == proxy.auth for s in proxy.seen)
            assert proxy.seen[0].headers["host"] == f"127.0.0.1:{up.port}"
            assert proxy.connections == 1 and up.connections == 1
            assert CountingRules.asked == [("http", "127.0.0.1", up.port)]
            assert up.requests[0].startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
    run(go())


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_407_and_403_are_clear_connect_errors_without_the_password(vendor_tls, scheme):
    async def go():
        async with Upstream(keep_answering, tls=vendor_tls[0] if scheme == "https" else None) as up:
            url = vendor_url(up) if scheme == "https" else up.url
            async with FakeProxy(auth=("alice", "another")) as proxy:
                with pytest.raises(http1.ConnectError) as failed:
                    await proxied_pool(proxy.url(USERINFO)).request("POST", url, {}, b"{}")
                assert failed.value.reason.startswith("proxy answered 407")
                assert not any(part in repr(failed.value) for part in (SECRET, USERINFO, "alice"))
            async with FakeProxy(refuse=True) as proxy:
                p = proxied_pool(proxy.url())
                if scheme == "https":
                    with pytest.raises(http1.ConnectError) as failed:
                        await p.request("POST", url, {}, b"{}")
                    assert failed.value.reason == "proxy answered 403 to CONNECT"
                else:  # a 403 to a forwarded request may be the vendor's: it is an answer
                    assert (await p.request("POST", url, {}, b"{}")).status == 403
            assert up.connections == 0
    run(go())


def test_the_upstream_client_names_the_provider_never_the_proxy_credentials():
    async def go():
        async with Upstream(keep_answering) as up, FakeProxy(auth=("alice", "another")) as proxy:
            config = ProviderConfig(name="corp", type="openai", api_base=up.url, proxy=proxy.url(USERINFO),
                                    timeout=Timeout(connect=2, read=2, total=5))
            client = HttpClient(_Provider(config), env={})
            with pytest.raises(UpstreamConnectError) as failed:
                await client.send(UpstreamRequest("POST", up.url, {}, b"{}"))
            assert str(failed.value) == "cannot connect to upstream 'corp' (proxy answered 407)"
            assert SECRET not in repr(config) and USERINFO not in repr(config)
            await client.close()
    run(go())


def test_connect_timeout_covers_the_proxy_handshake(vendor_tls):
    async def go():
        async with Upstream(keep_answering, tls=vendor_tls[0]) as up, FakeProxy(silent=True) as proxy:
            started = time.monotonic()
            with pytest.raises(http1.ConnectError) as failed:
                await proxied_pool(proxy.url(), connect_timeout=0.3).request("POST", vendor_url(up), {}, b"{}")
            assert failed.value.reason == "TimeoutError" and time.monotonic() - started < 2
            assert proxy.seen[0].method == "CONNECT"
    run(go())


def test_an_unreachable_proxy_says_so():
    async def go():
        async with FakeProxy() as proxy:
            url = proxy.url()
        with pytest.raises(http1.ConnectError) as failed:
            await proxied_pool(url).request("POST", f"https://{VENDOR}/v1", {}, b"{}")
        assert failed.value.reason == "proxy ConnectionRefusedError"
    run(go())


# -- which proxy, from the environment and the provider's key --------------------------------------

def test_env_proxy_goes_through_for_https_and_loopback_is_never_proxied(vendor_tls, monkeypatch):
    async def go():
        async with Upstream(keep_answering) as plain, Upstream(keep_answering, tls=vendor_tls[0]) as tls_up, \
                FakeProxy() as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url())
            monkeypatch.setenv("HTTP_PROXY", proxy.url())
            p = pool(proxies=proxy_rules(None, os.environ))
            p._ssl = vendor_tls[1]
            assert await (await p.request("POST", vendor_url(tls_up), {}, b"{}")).read() == b'{"ok":0}'
            for url in (plain.url, plain.url.replace("127.0.0.1", "localhost")):
                assert (await p.request("POST", url, {}, b"{}")).status == 200  # loopback: direct
            assert [s.method for s in proxy.seen] == ["CONNECT"] and plain.connections == 2
    run(go())


def test_provider_proxy_key_beats_the_environment_and_none_turns_it_off(monkeypatch):
    async def go():
        async with Upstream(keep_answering) as up, FakeProxy() as chosen, FakeProxy(refuse=True) as env_proxy:
            monkeypatch.setenv("http_proxy", env_proxy.url())
            for setting, through in ((chosen.url(), chosen), ("", None)):
                config = ProviderConfig(name="corp", type="openai", api_base=up.url, proxy=setting)
                client = HttpClient(_Provider(config))
                assert (await client.send(UpstreamRequest("POST", up.url, {}, b"{}"))).status == 200
                await client.close()
            assert [s.target for s in chosen.seen] == [up.url]  # the provider's proxy, loopback or not
            assert env_proxy.seen == []
    run(go())


def test_no_proxy_entries():
    https = parse_proxy_url("http://proxy:3128")
    rules = ProxyRules.from_env({"HTTPS_PROXY": "http://proxy:3128",
                                 "NO_PROXY": " .corp.example, exact.test,api.test:8443,10.0.0.0/8, [2001:db8::1]:443"})
    assert rules is not None
    routes = {
        ("https", "api.openai.com", 443): https,
        ("https", "corp.example", 443): None, ("https", "a.b.corp.example", 443): None,
        ("https", "notcorp.example", 443): https,
        ("https", "exact.test", 443): None, ("https", "sub.exact.test", 443): None,
        ("https", "api.test", 8443): None, ("https", "api.test", 443): https,
        ("https", "10.1.2.3", 443): None, ("https", "11.1.2.3", 443): https,
        ("https", "2001:db8::1", 443): None, ("https", "2001:db8::1", 8443): https,
        ("https", "127.0.0.1", 443): None, ("https", "127.9.9.9", 443): None, ("https", "::1", 443): None,
        ("https", "localhost", 443): None, ("https", "app.localhost", 443): None,
        ("http", "api.openai.com", 80): None,  # no HTTP_PROXY
    }
    assert {key: rules.choose(*key) for key in routes} == routes
    everything = ProxyRules.from_env({"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "*"})
    assert everything.choose("https", "api.openai.com", 443) is None  # type: ignore[union-attr]


def test_environment_forms_and_precedence():
    assert ProxyRules.from_env({}) is None and ProxyRules.from_env({"HTTPS_PROXY": " "}) is None
    rules = ProxyRules.from_env({"HTTPS_PROXY": "http://upper:1", "https_proxy": "lower:3128"})
    assert rules.choose("https", "x.test", 443) == Proxy("lower", 3128)  # type: ignore[union-attr]
    assert parse_proxy_url("http://p").port == 80
    assert parse_proxy_url(f"http://{USERINFO}@p:1").authorization == "Basic YWxpY2U6cGE6c3NAdzByZA=="
    assert SECRET not in repr(parse_proxy_url(f"http://{USERINFO}@p:1"))
    assert proxy_rules("", {"HTTPS_PROXY": "http://p:1"}) is None
    mine = proxy_rules("http://mine:8080", {})
    assert mine is not None and mine.choose("https", "localhost", 443) == Proxy("mine", 8080)  # loopback too


def test_an_unusable_environment_proxy_fails_closed_without_its_credentials(caplog):
    env = {"HTTPS_PROXY": f"socks5://{USERINFO}@p:1080"}

    async def go():
        with pytest.raises(http1.ConnectError) as failed:
            await pool(proxies=ProxyRules.from_env(env)).request("POST", f"https://{VENDOR}/v1", {}, b"{}")
        assert failed.value.reason == "HTTPS_PROXY is not an http:// proxy URL"
        client = HttpClient(_Provider(ProviderConfig(name="corp", type="openai", api_base="https://x")), env=env)
        await client.close()
    run(go())
    assert [r.getMessage() for r in caplog.records] == [
        "provider 'corp': HTTPS_PROXY is not an http:// proxy URL; its connections that would use it fail"]


@pytest.mark.parametrize("url", ["https://p:443", "socks5://p:1080", "http://p:port", "http://", "p:3128",
                                 "http://p:1/path"])
def test_only_http_proxy_urls_are_accepted(url):
    with pytest.raises(ValueError, match="must be an http:// proxy URL"):
        parse_proxy_url(url)


def test_redact_hides_userinfo_only():
    assert redact(f"socks5://{USERINFO}@p:1080/x") == "socks5://***@p:1080/x"
    assert redact(f"{USERINFO}@p:1") == "***@p:1"
    assert redact("http://p:1/a@b") == "http://p:1/a@b"


class _Provider:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
