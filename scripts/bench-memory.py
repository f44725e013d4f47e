#!/usr/bin/env python3
"""Memory benchmark of the XKS proxy (not a test): idle keep-alive connections and an
unauthenticated huge request body.

Starts `xks-proxy demo` (release build) on 127.0.0.1, then measures the proxy's resident
memory (VmRSS / VmHWM from /proc) while
  1. N TLS connections (default 10,000) are opened, each sends one signed health check
     over HTTP/1.1 keep-alive, and then stays idle;
  2. one connection streams a 300 MB body without SigV4 credentials.

Usage: scripts/bench-memory.py [--connections N] [--body-mb M] [--binary PATH] [--http2]

With --http2 the idle connections negotiate HTTP/2 (ALPN h2) and each sends one GET of
the ping path (a minimal HTTP/2 client below: the standard library has none).
Everything targets loopback and is bounded in count and time.
"""

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import time


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found")


def start_demo(binary):
    proc = subprocess.Popen(
        [binary, "demo", "--json", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("demo exited early")
        lines.append(line)
        if line.rstrip() == "}":
            return proc, json.loads("".join(lines))
    raise RuntimeError("demo did not start within 30 s")


def signed_health_request(info, host):
    """A curl-signed request is awkward from Python; sign with the demo's curl line instead:
    we only need a syntactically valid HTTP/1.1 request that keeps the connection alive, and
    an unauthenticated one is answered 401 and kept alive just the same."""
    body = b'{"requestMetadata":{"kmsRequestId":"mem","kmsOperation":"KmsHealthCheck"}}'
    return (
        f"POST {info['uri_path']}/health HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_idle(n, port, context, request, batch=200):
    conns = []
    for start in range(0, n, batch):
        async def one():
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"),
                timeout=30,
            )
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await asyncio.wait_for(reader.readexactly(length), timeout=30)
            return reader, writer

        conns += await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return conns


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_ping_request(path, authority):
    """The connection preface, empty SETTINGS, and a GET on stream 1 (HPACK: :method GET
    and :scheme https from the static table, :path and :authority as literals)."""

    def literal(name_index, value):
        value = value.encode()
        return bytes([name_index, len(value)]) + value

    block = b"\x82\x87" + literal(4, path) + literal(1, authority)
    return H2_PREFACE + h2_frame(0x4, 0, 0) + h2_frame(0x1, 0x5, 1, block)


async def open_idle_h2(n, port, context, request, batch=200):
    """Like open_idle, over HTTP/2: waits for the end of stream 1 (and acknowledges the
    server's SETTINGS), then leaves the connection open and idle."""
    conns = []
    for start in range(0, n, batch):
        async def one():
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"),
                timeout=30,
            )
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
            writer.write(request)
            while True:
                head = await asyncio.wait_for(reader.readexactly(9), timeout=30)
                length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                await asyncio.wait_for(reader.readexactly(length), timeout=30)
                if kind == 0x4 and not flags & 0x1:
                    writer.write(h2_frame(0x4, 0x1, 0))
                if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
                    break
            await writer.drain()
            return reader, writer

        conns += await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return conns


async def huge_body(port, context, info, megabytes):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    total = megabytes * 1024 * 1024
    writer.write(
        (
            f"POST {info['uri_path']}/keys/demo-key-1/encrypt HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    chunk = b"A" * (1024 * 1024)
    sent = 0
    status = None
    try:
        while sent < total:
            writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            await asyncio.wait_for(writer.drain(), timeout=10)
            sent += len(chunk)
    except (ConnectionError, asyncio.TimeoutError, ssl.SSLError):
        pass
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        status = head.split(b" ")[1].decode()
    except Exception:  # noqa: BLE001 - report whatever happened
        status = "connection closed without a response"
    writer.close()
    return sent, status


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--body-mb", type=int, default=300)
    parser.add_argument("--binary", default="target/release/xks-proxy")
    parser.add_argument("--http2", action="store_true", help="idle connections over HTTP/2")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit(f"need {args.connections + 100} file descriptors, have {hard}")

    proc, info = start_demo(args.binary)
    try:
        port = int(info["endpoint"].rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=info["ca_certificate"])
        context.set_alpn_protocols(["http/1.1"])
        request = signed_health_request(info, f"localhost:{port}")
        # Warm up: one connection, so allocator and TLS state exist before the baseline.
        warm = await open_idle(1, port, context, request)
        base = rss_kib(proc.pid)

        before = base
        hwm_before = rss_kib(proc.pid, "VmHWM")
        sent, status = await huge_body(port, context, info, args.body_mb)
        await asyncio.sleep(0.5)
        after = rss_kib(proc.pid)
        hwm_after = rss_kib(proc.pid, "VmHWM")
        print(
            f"unauthenticated {args.body_mb} MB body: client sent {sent / 1048576:.0f} MiB before the "
            f"proxy answered {status}; proxy RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB "
            f"(+{(after - before) / 1024:.2f} MiB), peak RSS grew by {(hwm_after - hwm_before) / 1024:.2f} MiB"
        )
        base = rss_kib(proc.pid)
        started = time.time()
        if args.http2:
            h2_context = ssl.create_default_context(cafile=info["ca_certificate"])
            h2_context.set_alpn_protocols(["h2"])
            ping = h2_ping_request("/ping", f"localhost:{port}")
            conns = await open_idle_h2(args.connections, port, h2_context, ping)
        else:
            conns = await open_idle(args.connections, port, context, request)
        await asyncio.sleep(1)
        idle = rss_kib(proc.pid)
        print(
            f"idle keep-alive {'HTTP/2' if args.http2 else 'HTTP/1.1'} connections: {len(conns)} opened in {time.time() - started:.1f} s; "
            f"proxy RSS {base / 1024:.1f} MiB -> {idle / 1024:.1f} MiB "
            f"(+{(idle - base) / 1024:.1f} MiB, {(idle - base) * 1024 / max(len(conns), 1):.0f} bytes each)"
        )
        for _, writer in conns + warm:
            writer.close()

    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    asyncio.run(main())
