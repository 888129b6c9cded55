"""`danbao bench api`: complete escrow lifecycles over HTTP (create, pay, ship, confirm) with
1 and 16 concurrent clients, against the bare endpoint of the same framework.

A shared VM's speed drifts by tens of percent within minutes, so the scenarios run
interleaved, in rounds of equal slices, and each scenario's slices are pooled: a ratio
then compares the same stretches of time. The servers run in their own processes (uvicorn with uvloop and httptools, one worker);
the load comes from this process over loopback, with keep-alive connections, each client
waiting for its response before sending the next request (closed loop), for a bounded
time. Latency is per request, from send to full response.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass

from danbao.client import Danbao

CLIENTS_MAX = 256
CURRENCY = "CNY"
PRICE = 10_00


@dataclass
class ApiFigure:
    scenario: str
    clients: int
    requests: int
    lifecycles: int
    seconds: float
    latencies_ms: list[float]

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def lifecycles_per_second(self) -> float:
        return self.lifecycles / self.seconds if self.seconds else 0.0

    @classmethod
    def pooled(cls, slices: list[ApiFigure]) -> ApiFigure:
        """One figure from runs of the same scenario (the slices of an interleaved bench)."""
        first = slices[0]
        if any((f.scenario, f.clients) != (first.scenario, first.clients) for f in slices):
            raise ValueError("only slices of one scenario pool")
        return cls(first.scenario, first.clients, sum(f.requests for f in slices), sum(f.lifecycles for f in slices),
                   sum(f.seconds for f in slices), [ms for f in slices for ms in f.latencies_ms])

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class ServerProcess:
    def __init__(self, kind: str, database_url: str = ""):
        self.process = subprocess.Popen([sys.executable, "-m", "danbao.bench.api_server", kind, database_url], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ready = json.loads(self.process.stdout.readline())  # blocks until the server is bound
        self.url = f"http://127.0.0.1:{ready['port']}"
        self.admin_key: str | None = ready["admin_key"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Connection:
    """One keep-alive HTTP/1.1 connection, a request at a time.

    The load generator shares the 2-core machine with the server, so it must cost far less
    per request than what it measures: httpx spends about 1 ms of CPU per request here,
    more than the bare endpoint itself, so this speaks the little HTTP/1.1 a bench needs.
    """

    def __init__(self, url: str, key: str | None = None, *, idempotency_keys: bool = False):
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.auth = f"Authorization: Bearer {key}\r\n".encode() if key else b""
        self.idempotency_keys = idempotency_keys
        self._sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.writer is not None
        self.writer.close()

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        if self.idempotency_keys and method == "POST":
            self._sent += 1
            head += f"Idempotency-Key: {id(self):x}-{self._sent}\r\n".encode()
        self.writer.write(head + self.auth + b"\r\n" + body)
        response_head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(response_head[9:12])
        length = 0
        for line in response_head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


async def _timed(conn: Connection, latencies: list[float], method: str, path: str, body: object = None) -> dict:  # type: ignore[type-arg]
    payload = json.dumps(body).encode() if body is not None else b""
    start = time.perf_counter()
    status, text = await conn.request(method, path, payload)
    latencies.append((time.perf_counter() - start) * 1000)
    if status >= 400:
        raise RuntimeError(f"{method} {path}: {status} {text.decode()}")
    return json.loads(text)  # type: ignore[no-any-return]


def lifecycles(server: ServerProcess, *, clients: int, seconds: float, idempotency_keys: bool = False) -> ApiFigure:
    if not 1 <= clients <= CLIENTS_MAX:
        raise ValueError(f"clients must be between 1 and {CLIENTS_MAX}")
    with Danbao(server.url, server.admin_key) as admin:
        tag = str(time.time_ns())[-8:]
        seller = f"s{tag}-{clients}"
        admin.create_party("seller", "Bench seller", id=seller)
        seller_key = admin.issue_key(seller).key
        buyer_keys = []
        for i in range(clients):
            buyer = f"b{tag}-{clients}-{i}"
            admin.create_party("buyer", f"Bench buyer {i}", id=buyer)
            key = admin.issue_key(buyer).key
            buyer_keys.append(key)
            with Danbao(server.url, key) as b:
                b.top_up(10**12, CURRENCY)

    async def run() -> ApiFigure:
        latencies: list[float] = []
        counts = {"requests": 0, "lifecycles": 0}
        deadline = time.perf_counter() + seconds

        async def client(i: int) -> None:
            keyed = idempotency_keys
            async with Connection(server.url, buyer_keys[i], idempotency_keys=keyed) as buyer, Connection(server.url, seller_key, idempotency_keys=keyed) as seller_http:
                while time.perf_counter() < deadline:
                    t = await _timed(buyer, latencies, "POST", "/v1/trades", {"seller_id": seller, "model": "escrow", "amount": PRICE, "currency": CURRENCY})
                    await _timed(buyer, latencies, "POST", f"/v1/trades/{t['id']}/pay")
                    await _timed(seller_http, latencies, "POST", f"/v1/trades/{t['id']}/ship")
                    done = await _timed(buyer, latencies, "POST", f"/v1/trades/{t['id']}/confirm")
                    assert done["status"] == "completed"
                    counts["requests"] += 4
                    counts["lifecycles"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
        return ApiFigure("escrow lifecycle" + (", keyed" if idempotency_keys else ""), clients, counts["requests"], counts["lifecycles"], elapsed, latencies)

    return asyncio.run(run())


def bare(server: ServerProcess, *, clients: int, seconds: float) -> ApiFigure:
    async def run() -> ApiFigure:
        latencies: list[float] = []
        count = [0]
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            async with Connection(server.url) as http:
                while time.perf_counter() < deadline:
                    await _timed(http, latencies, "GET", "/bare")
                    count[0] += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return ApiFigure("bare endpoint", clients, count[0], 0, time.perf_counter() - start, latencies)

    return asyncio.run(run())
