"""A small TCP fault proxy (toxiproxy-style) for the drill: one process, one listener per route, one control port.

Each route forwards a local port to an upstream ``host:port`` byte for byte. ``cut`` aborts every open connection
of the route (both sides get a reset, as when a server or a network link dies) and refuses new ones: the listener
is closed, so a client's connect fails at once with "connection refused" (what a restarted or unreachable
service looks like to a client on the same network). ``restore`` listens again on the same port.

Control, over HTTP on ``--control`` (loopback only)::

    GET  /                 -> {"pg": {"listen": 6001, "upstream": "127.0.0.1:5432", "up": true, "open": 12, ...}}
    POST /cut/<route>      -> 200, the route is down
    POST /restore/<route>  -> 200, the route is up again

Command line::

    python ops/faultproxy.py --control 127.0.0.1:6000 --route pg=6001:127.0.0.1:5432 --route redis=6002:127.0.0.1:6379

It prints one JSON line ``{"ready": true, ...}`` once every listener is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import struct
import sys
import urllib.request
from dataclasses import dataclass, field
from typing import Any

CHUNK = 65536


@dataclass
class Route:
    name: str
    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int
    server: asyncio.base_events.Server | None = None
    pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = field(default_factory=set)
    accepted: int = 0
    refused_while_down: int = 0
    cuts: int = 0

    @property
    def up(self) -> bool:
        return self.server is not None

    def status(self) -> dict[str, object]:
        return {
            "listen": self.listen_port,
            "upstream": f"{self.upstream_host}:{self.upstream_port}",
            "up": self.up,
            "open": len(self.pairs),
            "accepted": self.accepted,
            "cuts": self.cuts,
        }

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, self.listen_host, self.listen_port, reuse_address=True, backlog=512
        )

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
            self.cuts += 1
        for client, upstream in list(self.pairs):
            for writer in (client, upstream):
                if writer is not None:
                    _reset(writer)
        self.pairs.clear()

    async def restore(self) -> None:
        if self.server is None:
            await self.start()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        generation = self.cuts
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _reset(client_writer)
            return
        if self.cuts != generation or self.server is None:  # cut while connecting upstream: this one dies too
            _reset(client_writer)
            _reset(up_writer)
            return
        pair = (client_writer, up_writer)
        self.pairs.add(pair)
        try:
            await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
        finally:
            self.pairs.discard(pair)
            for writer in pair:
                with contextlib.suppress(Exception):
                    writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST, as a dead peer or a cut link gives), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


class Proxy:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = {route.name: route for route in routes}

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            status, body = await self.dispatch(*(request[:2] if len(request) >= 2 else ("", "")))
        except Exception as exc:  # a control client's mistake never stops the proxy
            status, body = 500, {"error": str(exc)}
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()

    async def dispatch(self, method: str, path: str) -> tuple[int, object]:
        parts = [part for part in path.split("/") if part]
        if method == "GET" and not parts:
            return 200, {name: route.status() for name, route in self.routes.items()}
        if method == "POST" and len(parts) == 2 and parts[0] in ("cut", "restore") and parts[1] in self.routes:
            route = self.routes[parts[1]]
            await (route.cut() if parts[0] == "cut" else route.restore())
            return 200, {parts[1]: route.status()}
        return 404, {"error": f"unknown {method} {path}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Control:
    """The client side of the control API (the drill and the tests drive a running proxy with it)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/"))

    def cut(self, route: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/cut/{route}")[route])

    def restore(self, route: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/restore/{route}")[route])


def parse_route(text: str) -> Route:
    """``name=listen_port:upstream_host:upstream_port``"""
    name, _, spec = text.partition("=")
    listen, host, port = spec.split(":")
    return Route(name, "127.0.0.1", int(listen), host, int(port))


async def serve(control: str, routes: list[Route]) -> None:
    proxy = Proxy(routes)
    for route in routes:
        await route.start()
    host, _, port = control.rpartition(":")
    server = await asyncio.start_server(proxy.control, host or "127.0.0.1", int(port), reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"ready": True, "routes": {r.name: r.status() for r in routes}}), flush=True)
    async with server:
        await stop.wait()
    for route in routes:
        await route.cut()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--control", required=True, help="host:port of the control API")
    parser.add_argument("--route", action="append", default=[], help="name=listen_port:upstream_host:upstream_port")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.control, [parse_route(text) for text in args.route]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
