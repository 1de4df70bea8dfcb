"""The SSRF guard of every outbound URL the server calls on a client's behalf (webhook endpoints, push services).

``resolve`` accepts http(s) URLs without credentials whose host resolves to public addresses only: loopback,
private, link-local, multicast, reserved, unspecified, shared (100.64/10) and other non-global addresses are refused,
also inside IPv4-mapped, 6to4 and Teredo IPv6 forms. Hosts in ``WEBHOOK_ALLOWED_HOSTS`` skip the address check. It
returns the checked addresses, so a caller can connect to one of them rather than resolve the name again.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

__all__ = ["Target", "UnsafeURL", "allowed_hosts", "resolve"]


class UnsafeURL(Exception):
    """The URL may not be called: bad scheme, credentials, or an address that is not public (SSRF guard)."""


def allowed_hosts() -> set[str]:
    return {host.strip().lower().strip("[]") for host in settings.WEBHOOK_ALLOWED_HOSTS if host.strip()}


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour):
            if embedded is not None:
                return _public(embedded)
        if address.teredo is not None:
            return False
    return bool(
        address.is_global
        and not (
            address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        )
    )


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]  # checked, in the order to try (IPv4 first)


def resolve(url: str) -> Target:
    """The checked target of ``url``: ``UnsafeURL`` unless it is http(s) without credentials and every address its
    host resolves to is public (or the host is in ``WEBHOOK_ALLOWED_HOSTS``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("Only http and https URLs can receive webhooks.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("A webhook URL may not carry credentials.")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURL("The URL has no host.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"The host {host!r} does not resolve.") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"The host {host!r} does not resolve.")
    if host not in allowed_hosts():
        refused = sorted({str(a) for a in addresses if not _public(a)})
        if refused:
            raise UnsafeURL(f"The host {host!r} resolves to a non-public address ({', '.join(refused)}): refused.")
    ordered = sorted(dict.fromkeys(addresses), key=lambda a: a.version)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, tuple(str(a) for a in ordered))
