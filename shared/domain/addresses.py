"""Webhook targets: which URLs fastlane accepts, and which addresses it may refuse to deliver to."""

import ipaddress
import socket
from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook target (None when it can): http or https with a host, nothing else."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port out of range or not a number
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{url!r} must be an http or https URL"
    if not parts.hostname:
        return f"{url!r} has no host"
    if any(c.isspace() for c in url):
        return f"{url!r} must not contain spaces"
    return None


def is_private(address: str) -> bool:
    """Loopback, private, link-local, reserved, multicast or unspecified: not a public internet address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def literal_private(url: str) -> bool:
    """The URL's host is an IP address (or `localhost`) in a non-public range; names are checked at delivery."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return is_private(host)
    except ValueError:
        return False


def resolves_private(url: str) -> str | None:
    """The first non-public address the URL's host resolves to, or None when all are public."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for *_, sockaddr in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP):
        if is_private(str(sockaddr[0])):
            return str(sockaddr[0])
    return None
