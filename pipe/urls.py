"""Where the pipe may send a Bitbucket credential: BITBUCKET_API_URL's rule (https; plain http
only to this machine), and the origin a URL is on. Read by config (before any call), by the
Bitbucket client (a page's ``next``), and by the check's signature verification (the issuer and
its keys).

A URL read from an answer is compared as urllib3 reads it, since urllib3 (under requests) is
what sends the request: ``https://evil.example\\@api.bitbucket.org/`` is api.bitbucket.org to
``urlsplit`` and evil.example to urllib3. A URL with a backslash, user info or a character that
is not printable is refused outright (``unplain``): parsers disagree on each of them."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from urllib3.util import parse_url


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
    problem = unplain(url)
    if problem:
        return problem
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return "uses plain http: the token would cross the network in clear text; use https"
    return None


def unplain(url: str) -> str | None:
    """Why ``url`` is not plain enough to send a credential to, or None: a backslash, user info
    (as either urlsplit or urllib3 reads it) or a character that is not printable."""
    if "\\" in url:
        return "holds a backslash"
    if not url.isprintable():
        return "holds a character that is not printable"
    try:
        split, parsed = urlsplit(url), parse_url(url)
    except ValueError:
        return "is not a URL"
    if split.username is not None or split.password is not None or parsed.auth is not None:
        return "holds user info (user@)"
    return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) as urllib3 reads ``url``, with the default port filled in;
    ValueError for what urllib3 cannot parse (a bad port among them)."""
    parts = parse_url(url)
    scheme = (parts.scheme or "").lower()
    default = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.host or "").lower().strip("[]"), parts.port or default


def same_origin(url: str, base: tuple[str, str, int | None]) -> bool:
    """True when ``url`` is plain (``unplain``) and on ``base``'s origin as urllib3 reads it."""
    if unplain(url) is not None:
        return False
    try:
        return origin(url) == base
    except ValueError:
        return False
