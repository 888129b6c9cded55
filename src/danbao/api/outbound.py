"""Where a webhook may be sent: the networks a receiver's address may lie in, checked when an
endpoint is registered (a literal address or a local name) and again at every attempt,
after resolving the receiver's name, with the request pinned to the address checked.

Without the check, any party could make the server POST to what only the server can reach:
its own admin ports, the cloud's metadata service, the operator's private network (SSRF).
Pinning closes the gap a second lookup would leave: a name that resolves to a public address
for the check and to a private one for the connection (DNS rebinding) still reaches only the
address checked. HTTPS keeps verifying the certificate against the name (SNI), not the
address.

Operators who deliver to receivers on their own network (and tests, whose receivers listen on
loopback) allow private networks in `WebhookSettings`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

# A receiver's name resolved to its addresses (as text), for the port the URL names.
Resolve = Callable[[str, int], Awaitable[list[str]]]
ADDRESSES_MAX = 32  # a name answering with more is refused, not walked
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AddressRefused(Exception):
    """The receiver's address lies in a network webhooks may not reach."""


async def system_resolve(host: str, port: int) -> list[str]:
    """The system's lookup, each on a daemon thread of its own, at most `LOOKUPS_MAX` at once.

    Not on the event loop's executor: a lookup may hang far past an attempt's deadline (a
    DNS server that never answers), and `asyncio.run` waits for its executor's threads
    before it returns, so one hung name would have held the whole delivery pass, and its
    claims, until the system resolver gave up. Here the attempt ends at its deadline and
    the hung lookup holds one thread, which ends when the resolver does.
    """
    if not _LOOKUPS.acquire(blocking=False):
        raise OSError(f"{LOOKUPS_MAX} name lookups are still waiting for answers; {host} is looked up at a later attempt")
    answer: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
    threading.Thread(target=_look_up, args=(answer, host, port), name="danbao-lookup", daemon=True).start()
    infos = await asyncio.wrap_future(answer)
    return [str(info[4][0]) for info in infos]


LOOKUPS_MAX = 32  # lookups in flight, hung ones included; past it an attempt fails at once
_LOOKUPS = threading.BoundedSemaphore(LOOKUPS_MAX)


def _look_up(answer: concurrent.futures.Future[list[Any]], host: str, port: int) -> None:
    outcome: list[Any] | BaseException = []
    try:
        if answer.set_running_or_notify_cancel():  # False: the attempt has already given up
            outcome = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except BaseException as error:  # handed to the attempt, which records why it failed
        outcome = error
    _LOOKUPS.release()  # before answering, so whoever the answer wakes finds the place free
    if answer.running():
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


def is_public(address: str) -> bool:
    """An address on the public internet: not loopback, private, link-local (where cloud
    metadata services answer), shared, reserved or multicast."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback, whatever its spelling
    return ip.is_global and not ip.is_multicast


def refusal_at_registration(url: httpx.URL) -> str | None:
    """Why an endpoint URL can never be delivered to under the public-only rule, judged
    without a lookup (registration answers on the request path): a local name or a
    non-public literal address. None when only the attempt's lookup can tell."""
    host = _host(url)
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} names this machine"
    try:
        public = is_public(host)
    except ValueError:
        return None  # a name: checked at each attempt, after it is resolved
    return None if public else f"{host} is not a public address"


def _host(url: httpx.URL) -> str:
    """The host as resolved and sent: lower case, IDNA-encoded, IPv6 without brackets."""
    return url.raw_host.decode("ascii")


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request to a receiver, aimed at one checked address."""

    url: str
    name: str  # the host (and port) the receiver was registered with: the Host header
    extensions: dict[str, Any]  # for HTTPS, the name the certificate must match


async def pin(url: str, *, private_networks: bool, resolve: Resolve) -> Pinned:
    """Resolve the receiver's host and aim the request at its first address, refusing the
    URL if any address it resolves to is not public (unless private networks are allowed)."""
    target = httpx.URL(url)
    host = _host(target)
    addresses = await resolve(host, target.port or _DEFAULT_PORTS[target.scheme])
    if not addresses:
        raise AddressRefused(f"{host} resolves to no address")
    if len(addresses) > ADDRESSES_MAX:
        raise AddressRefused(f"{host} resolves to more than {ADDRESSES_MAX} addresses")
    if not private_networks:
        for address in addresses:
            if not is_public(address):
                raise AddressRefused(f"{host} resolves to {address}, not a public address")
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    return Pinned(str(target.copy_with(host=addresses[0])), target.netloc.decode("ascii"), extensions)
