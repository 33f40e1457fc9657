"""gateway.http1 against raw sockets that answer exactly the bytes each test scripts."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib

import pytest

from gateway import http1


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


class Upstream:
    """A TCP server; ``script(reader, writer)`` plays one connection. Records requests and connections."""

    def __init__(self, script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> "Upstream":
        async def handle(reader, writer):
            self.connections += 1
            try:
                await self.script(self, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{'localhost' if self.tls else '127.0.0.1'}:{self.port}/v1/chat/completions?x=1"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body


def pool(**kw) -> http1.Pool:
    options = {"limit": 10, "connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 10.0}
    options.update(kw)
    return http1.Pool(**options)


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers)
    return head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body


async def keep_answering(up, reader, writer, make=lambda i: answer(b'{"ok":%d}' % i, "Content-Type: application/json")):
    i = 0
    while True:
        await up.read_request(reader)
        writer.write(make(i))
        await writer.drain()
        i += 1


def test_request_bytes_and_keep_alive_reuse():
    async def go():
        async with Upstream(keep_answering) as up:
            p = pool()
            for i in range(3):
                response = await p.request("POST", up.url, {"Content-Type": "application/json",
                                                           "Authorization": "Bearer k"}, b'{"a":1}')
                assert response.status == 200 and response.headers["content-type"] == "application/json"
                assert await response.read() == b'{"ok":%d}' % i
            assert up.connections == 1
            first = up.requests[0].decode()
            assert first.startswith("POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
            assert f"Host: 127.0.0.1:{up.port}\r\n" in first and "Authorization: Bearer k\r\n" in first
            assert "Content-Length: 7\r\n" in first and "Accept-Encoding: gzip, deflate\r\n" in first
            assert first.endswith('\r\n\r\n{"a":1}')
            await p.close()
    run(go())


def test_get_without_body_sends_no_length():
    async def go():
        async with Upstream(keep_answering) as up:
            p = pool()
            await (await p.request("GET", up.url, {}, None)).read()
            assert b"content-length" not in up.requests[0].lower()
    run(go())


def test_chunked_body_arrives_piece_by_piece_and_gzip_is_decoded():
    packed = gzip.compress(b"data: one\n\ndata: two\n\n")

    async def script(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        for piece in (packed[:10], packed[10:]):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await up.read_request(reader)  # the connection is kept for the next request

    async def go():
        async with Upstream(script) as up:
            p = pool()
            response = await p.request("POST", up.url, {}, b"{}")
            pieces = [piece async for piece in response.chunks()]
            assert b"".join(pieces) == b"data: one\n\ndata: two\n\n"
            assert p._idle  # back in the pool
    run(go())


def test_close_delimited_body_and_deflate():
    async def script(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: deflate\r\nconnection: close\r\n\r\n"
                     + zlib.compress(b"whole body"))
        await writer.drain()

    async def go():
        async with Upstream(script) as up:
            p = pool()
            response = await p.request("POST", up.url, {}, b"{}")
            assert await response.read() == b"whole body"
            assert not p._idle.get(("http", "127.0.0.1", up.port))  # not reused after close
    run(go())


def test_interim_100_answer_is_skipped():
    async def script(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"ok", status="201 Created"))

    async def go():
        async with Upstream(script) as up:
            response = await pool().request("POST", up.url, {}, b"{}")
            assert response.status == 201 and await response.read() == b"ok"
    run(go())


def test_server_closing_an_idle_connection_is_not_reused():
    async def script(up, reader, writer):
        await up.read_request(reader)
        writer.write(answer(b"one"))
        await writer.drain()  # then close: the pooled connection dies while idle

    async def go():
        async with Upstream(script) as up:
            p = pool()
            assert await (await p.request("POST", up.url, {}, b"{}")).read() == b"one"
            await asyncio.sleep(0.1)
            assert await (await p.request("POST", up.url, {}, b"{}")).read() == b"one"
            assert up.connections == 2
    run(go())


def test_errors_connect_refused_malformed_and_cut_mid_body():
    async def malformed(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")

    async def cut(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        await writer.drain()

    async def go():
        with pytest.raises(http1.ConnectError) as refused:
            async with Upstream(keep_answering) as up:
                url = up.url
            await pool().request("POST", url, {}, b"{}")
        assert refused.value.reason == "ConnectionRefusedError"
        async with Upstream(malformed) as up:
            with pytest.raises(http1.ProtocolError):
                await pool().request("POST", up.url, {}, b"{}")
        async with Upstream(cut) as up:
            response = await pool().request("POST", up.url, {}, b"{}")
            with pytest.raises(http1.ProtocolError):
                await response.read()
    run(go())


def test_read_and_total_timeouts():
    async def silent(up, reader, writer):
        await up.read_request(reader)
        await asyncio.sleep(5)

    async def trickle(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(50):
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    async def go():
        async with Upstream(silent) as up:
            with pytest.raises(TimeoutError):
                await pool(read_timeout=0.2).request("POST", up.url, {}, b"{}")
        async with Upstream(trickle) as up:
            response = await pool(read_timeout=1.0, total_timeout=0.5).request("POST", up.url, {}, b"{}")
            with pytest.raises(TimeoutError):
                await response.read()  # never silent for long, but longer than the total
    run(go())


def test_limit_waits_for_a_free_connection_within_the_connect_timeout():
    async def slow(up, reader, writer):
        await up.read_request(reader)
        await asyncio.sleep(0.3)
        writer.write(answer(b"done"))
        await up.read_request(reader)
        writer.write(answer(b"done"))

    async def go():
        async with Upstream(slow) as up:
            p = pool(limit=1, connect_timeout=2.0)
            first = asyncio.create_task(p.request("POST", up.url, {}, b"{}"))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(p.request("POST", up.url, {}, b"{}"))
            assert await (await first).read() == b"done"
            assert await (await second).read() == b"done"
            assert up.connections == 1
            p2 = pool(limit=1, connect_timeout=0.1)
            held = await p2.request("POST", up.url, {}, b"{}")
            with pytest.raises(TimeoutError):
                await p2.request("POST", up.url, {}, b"{}")
            held.close()
    run(go())


def test_closing_an_unfinished_answer_drops_the_connection_and_cancelling_too():
    async def endless(up, reader, writer):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async def go():
        async with Upstream(endless) as up:
            p = pool()
            response = await p.request("POST", up.url, {}, b"{}")
            async for _ in response.chunks():
                break
            response.close()
            task = asyncio.create_task(p.request("POST", up.url, {}, b"{}"))
            response = await task
            reader = asyncio.create_task(response.read())
            await asyncio.sleep(0.05)
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            await asyncio.sleep(0.05)
            assert up.connections == 2 and not p._idle.get(("http", "127.0.0.1", up.port)) and p._in_use == 0
    run(go())


def test_header_injection_is_refused():
    async def go():
        async with Upstream(keep_answering) as up:
            with pytest.raises(ValueError):
                await pool().request("POST", up.url, {"x-evil": "a\r\nHost: elsewhere"}, b"{}")
    run(go())


def test_slow_reader_pauses_the_socket():
    big = b"x" * (http1.HIGH_WATER * 4)

    async def script(up, reader, writer):
        await up.read_request(reader)
        writer.write(answer(big))
        await writer.drain()

    async def go():
        async with Upstream(script) as up:
            response = await pool().request("POST", up.url, {}, b"{}")
            await asyncio.sleep(0.2)
            assert response._conn.paused and response._conn.buffered <= http1.HIGH_WATER * 2
            assert len(await response.read()) == len(big)
    run(go())


def test_tls_with_sni_and_verification(tmp_path):
    cryptography = pytest.importorskip("cryptography")  # noqa: F841
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def go():
        async with Upstream(keep_answering, tls=server_tls) as up:
            untrusting = pool()
            with pytest.raises(http1.ConnectError) as failed:
                await untrusting.request("POST", up.url, {}, b"{}")
            assert "SSL" in failed.value.reason
            trusting = pool()
            trusting._ssl = ssl.create_default_context(cafile=cert)
            assert await (await trusting.request("POST", up.url, {}, b"{}")).read() == b'{"ok":0}'
    run(go())


def self_signed(tmp_path, *names: str):
    """A certificate for ``names`` (``localhost`` when none) that is its own CA: (cert path, key path)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names = names or ("localhost",)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_an_idle_connection_that_speaks_is_dropped_and_large_bodies_go_whole():
    big = b"y" * 200_000

    async def script(up, reader, writer):
        request = await up.read_request(reader)
        writer.write(answer(str(len(request)).encode()))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()

    async def go():
        async with Upstream(script) as up:
            p = pool()
            response = await p.request("POST", up.url, {}, big)
            assert int(await response.read()) > len(big)
            await asyncio.sleep(0.2)
            response = await p.request("POST", up.url, {}, b"{}")  # a fresh connection, not the one that spoke
            assert await response.read()
            assert up.connections == 2
    run(go())
