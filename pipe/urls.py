"""Where the pipe may send a Bitbucket credential: BITBUCKET_API_URL's rule (https; plain http
only to this machine), and the origin a URL is on. Read by config (before any call), by the
Bitbucket client, and by the check's signature verification."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_url(url: str) -> str | None:
    """What is wrong with ``url`` as BITBUCKET_API_URL, or None. The client sends its token
    there: https only, plain http only to this machine (a stand-in or a local proxy)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return "is not an http(s) URL with a host"
    if parts.username is not None or parts.password is not None:
        return "holds credentials: give them in BITBUCKET_ACCESS_TOKEN instead"
    if parts.query or parts.fragment:
        return "has a query or a fragment"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return "uses plain http: the token would cross the network in clear text; use https"
    return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in; ValueError for a bad port."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default
