"""Find Avalon miners on a network: probe `version` on every address of a CIDR, bounded and timed out."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from thermostat.miners.avalon import VersionInfo
from thermostat.miners.client import DEFAULT_PORT, MinerClient
from thermostat.miners.errors import MinerError

MAX_ADDRESSES = 1 << 16  # refuse networks larger than a /16 (IPv4) or the same count of IPv6 addresses


class ScanTooLarge(ValueError):
    """The network has more addresses than a /16."""


@dataclass(frozen=True)
class Found:
    host: str
    port: int
    info: VersionInfo


def scan_hosts(cidr: str) -> list[str]:
    """The host addresses of `cidr` (ValueError for a bad CIDR, ScanTooLarge above a /16)."""
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    if net.num_addresses > MAX_ADDRESSES:
        raise ScanTooLarge(f"{net} has {net.num_addresses} addresses; refusing to scan more than a /16")
    hosts = [str(h) for h in net.hosts()]
    return hosts or [str(net.network_address)]


async def probe(host: str, port: int = DEFAULT_PORT, timeout: float = 1.0, form: str = "json") -> Found | None:
    """`version` on one address: a Found for an Avalon (known model or PROD naming Avalon), else None."""
    client = MinerClient(host, port, form=form, connect_timeout=timeout, read_timeout=timeout)
    try:
        info = await client.version()
    except MinerError:
        return None
    return Found(host, port, info) if info.is_avalon else None


async def scan(
    cidr: str, port: int = DEFAULT_PORT, concurrency: int = 64, timeout: float = 1.0, form: str = "json"
) -> list[Found]:
    """Probe every host of `cidr` with at most `concurrency` connections open; results in address order."""
    hosts = scan_hosts(cidr)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    found: dict[str, Found] = {}
    pending: Iterator[str] = iter(hosts)

    async def worker() -> None:
        for host in pending:  # a shared iterator: each host is taken by exactly one worker
            result = await probe(host, port, timeout, form)
            if result is not None:
                found[host] = result

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(hosts)))))
    return [found[h] for h in hosts if h in found]
