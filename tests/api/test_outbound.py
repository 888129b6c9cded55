"""Where webhooks may go: public addresses only, unless the operator allows private networks,
with every request aimed at the address that was checked."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading

import httpx
import pytest

from danbao.api.outbound import (
    _LOOKUPS,
    ADDRESSES_MAX,
    LOOKUPS_MAX,
    AddressRefused,
    Pinned,
    _look_up,
    is_public,
    pin,
    refusal_at_registration,
    system_resolve,
)


def _pin(url: str, addresses: list[str], *, private_networks: bool = False) -> Pinned:
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return addresses

    pinned = asyncio.run(pin(url, private_networks=private_networks, resolve=resolve))
    assert len(asked) == 1
    return pinned


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
                                     "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::"])
def test_loopback_private_link_local_shared_and_multicast_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(address)


def test_a_name_is_aimed_at_its_checked_address_and_keeps_its_name_for_host_and_certificate() -> None:
    pinned = _pin("https://Hooks.Example.com:8443/in?x=1", ["93.184.216.34"])
    assert pinned == Pinned("https://93.184.216.34:8443/in?x=1", "hooks.example.com:8443", {"sni_hostname": "hooks.example.com"})
    plain = _pin("http://hooks.example.com/in", ["2606:2800:220:1:248:1893:25c8:1946"])
    assert plain == Pinned("http://[2606:2800:220:1:248:1893:25c8:1946]/in", "hooks.example.com", {})


def test_a_name_with_any_private_address_is_refused() -> None:
    with pytest.raises(AddressRefused, match="resolves to 10.0.0.1"):
        _pin("https://hooks.example.com/in", ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(AddressRefused, match="no address"):
        _pin("https://hooks.example.com/in", [])
    with pytest.raises(AddressRefused, match="more than"):
        _pin("https://hooks.example.com/in", ["93.184.216.34"] * (ADDRESSES_MAX + 1))
    assert _pin("http://hooks.example.com/in", ["10.0.0.1"], private_networks=True).url == "http://10.0.0.1/in"


def test_registration_refuses_what_no_lookup_could_change() -> None:
    assert refusal_at_registration(httpx.URL("http://localhost/x")) == "localhost names this machine"
    assert refusal_at_registration(httpx.URL("http://127.0.0.1:9/x")) == "127.0.0.1 is not a public address"
    assert refusal_at_registration(httpx.URL("https://hooks.example.com/x")) is None  # judged at each attempt
    assert refusal_at_registration(httpx.URL("https://93.184.216.34/x")) is None


def test_lookups_in_flight_are_bounded_and_a_hung_one_frees_its_place_when_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    let_go = threading.Event()

    def lookup(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        if host.startswith("hangs"):
            let_go.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "no answer")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)

    async def main() -> None:
        hung = [asyncio.ensure_future(system_resolve(f"hangs{n}.example", 443)) for n in range(LOOKUPS_MAX)]
        await asyncio.sleep(0)  # each has taken its place and started its thread
        with pytest.raises(OSError, match="lookups are still waiting"):
            await system_resolve("hooks.example", 443)
        let_go.set()
        failures = await asyncio.gather(*hung, return_exceptions=True)
        assert all(isinstance(f, socket.gaierror) for f in failures)
        assert await system_resolve("hooks.example", 443) == ["93.184.216.34"]

    asyncio.run(main())


def test_a_url_without_a_port_is_looked_up_for_its_scheme_s_port() -> None:
    for url, port in [("https://hooks.example.com/in", 443), ("http://hooks.example.com/in", 80), ("http://hooks.example.com:8080/in", 8080)]:
        asked: list[tuple[str, int]] = []

        async def resolve(host: str, port: int) -> list[str]:
            asked.append((host, port))
            return ["93.184.216.34"]

        asyncio.run(pin(url, private_networks=False, resolve=resolve))
        assert asked == [("hooks.example.com", port)]


def test_a_request_goes_to_the_first_address_and_a_name_may_answer_with_up_to_the_bound() -> None:
    assert _pin("https://hooks.example.com/in", ["93.184.216.34", "8.8.8.8"]).url == "https://93.184.216.34/in"
    assert _pin("https://hooks.example.com/in", ["93.184.216.34"] * ADDRESSES_MAX).url == "https://93.184.216.34/in"


def test_the_system_lookup_asks_for_stream_sockets_so_each_address_comes_once() -> None:
    # Asked without a socket type, the resolver answers once per type (stream, datagram, raw).
    assert asyncio.run(system_resolve("127.0.0.1", 443)) == ["127.0.0.1"]


def test_a_lookup_the_attempt_gave_up_on_before_it_started_answers_nothing_and_frees_its_place() -> None:
    assert _LOOKUPS.acquire(blocking=False)
    answer: concurrent.futures.Future[list[object]] = concurrent.futures.Future()
    answer.cancel()
    _look_up(answer, "hooks.example", 443)  # answering a cancelled future would raise here
    assert answer.cancelled()
    places = [_LOOKUPS.acquire(blocking=False) for _ in range(LOOKUPS_MAX)]
    assert all(places)
    for _ in places:
        _LOOKUPS.release()
