"""Where notifications may connect: public addresses only, unless the operator allows networks.

A channel's target comes from whoever added the channel, so the notifier must not become a way
into the networks it sits on (loopback services, the database, a cloud metadata endpoint). The
:class:`NetGuard` resolves a host once, refuses it unless every address it resolves to is public
(or inside ``IOT_NOTIFY_ALLOWED_NETWORKS``), connects to the checked address itself, never to the
name again (so a second DNS answer cannot swap in another address), and checks the connected
peer once more. Numeric host forms (``0x7f000001``, ``2130706433``, ``127.1``) resolve like any
name and are judged by the address they resolve to; IPv4 inside IPv6 (mapped, 6to4, NAT64) is
judged by the IPv4 address it carries.

Errors seen by whoever reads an attempt are deliberately coarse: :data:`NOT_ALLOWED` when the
address was refused before any connection, :data:`DELIVERY_FAILED` for every transport failure
(refused, timed out, reset, TLS, a peer that does not speak the protocol), so a failed attempt
does not tell an open port from a closed one. The cause is logged at INFO for the host's operator.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("iot.notify")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DELIVERY_FAILED = "delivery failed"
NOT_ALLOWED = "target not allowed: not a public address (see IOT_NOTIFY_ALLOWED_NETWORKS)"

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(OSError):
    """The target resolves to an address notifications may not reach."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped ``::ffff:a.b.c.d``, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, unique-local, site-local,
    shared (100.64/10), ``0.0.0.0/8``, multicast, reserved or documentation space."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return is_public(inner)
        if ip.is_site_local:
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback)


def parse_ip(text: str) -> IPAddress:
    """An address as a socket reports it (an IPv6 zone ``%eth0`` dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True)
class Resolved:
    """One checked address of a target: what to connect to, and the name it was reached by."""

    host: str
    port: int
    family: socket.AddressFamily
    sockaddr: tuple[str, int] | tuple[str, int, int, int]


class NetGuard:
    """Resolve, check and connect. ``allowed``: networks permitted besides public addresses
    (``IOT_NOTIFY_ALLOWED_NETWORKS``); an address is checked as is and, when it carries an IPv4
    address, as that address."""

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed)

    def permitted(self, ip: IPAddress) -> bool:
        if is_public(ip):
            return True
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
            candidates.append(inner)
        return any(c in net for c in candidates for net in self.allowed)

    def resolve(self, host: str, port: int) -> list[Resolved]:
        """Every address ``host`` resolves to, once; :class:`AddressRefused` unless all are permitted."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        out: list[Resolved] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if not self.permitted(parse_ip(str(sockaddr[0]))):
                raise AddressRefused(f"{host} resolves to {sockaddr[0]}, which is not permitted")
            out.append(Resolved(host, port, family, sockaddr))  # type: ignore[arg-type]
        if not out:
            raise AddressRefused(f"{host} resolves to no IP address")
        return out

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to a checked address of ``host``; the peer is checked again."""
        last: OSError | None = None
        for r in self.resolve(host, port):
            sock = socket.socket(r.family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(r.sockaddr)
                if not self.permitted(parse_ip(str(sock.getpeername()[0]))):
                    raise AddressRefused(f"connected peer of {host} is not permitted")
                return sock
            except AddressRefused:
                sock.close()
                raise
            except OSError as e:
                sock.close()
                last = e
        assert last is not None
        raise last


def failure_text(e: BaseException, where: str) -> str:
    """The one line an attempt records for a transport failure; the cause goes to the log only."""
    log.info("notification to %s failed: %s: %s", where, type(e).__name__, e)
    return NOT_ALLOWED if isinstance(e, AddressRefused) else DELIVERY_FAILED
