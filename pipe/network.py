"""Proxies and the CA bundle for every HTTP client of the pipe: botocore's (``pipe.aws``) and
requests' (``pipe.bitbucket``, the check's key fetch). Read from the settings only; the SDKs are
given them explicitly rather than left to read the environment.

Which URLs go through a proxy: ``https`` URLs through HTTPS_PROXY, ``http`` URLs through
HTTP_PROXY, unless NO_PROXY names the host. NO_PROXY is matched as Python's urllib (and curl)
match it (``urllib.request.proxy_bypass_environment``: ``*``, names that cover their subdomains,
``host:port``), plus CIDR ranges for IP addresses, as requests matches them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit


@dataclass(frozen=True)
class Network:
    https_proxy: str | None = None
    http_proxy: str | None = None
    no_proxy: str | None = None
    ca_bundle: str | None = None  # AWS_CA_BUNDLE: a PEM file; None: the SDKs' own trust store

    @property
    def proxied(self) -> bool:
        return bool(self.https_proxy or self.http_proxy)

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through; None: straight to it."""
        parts = urlsplit(url)
        proxy = self.https_proxy if parts.scheme == "https" else self.http_proxy
        if not proxy or self.bypass(url):
            return None
        return proxy

    def bypass(self, url: str) -> bool:
        """True when NO_PROXY names the host of ``url``."""
        if not self.no_proxy:
            return False
        # urllib's own NO_PROXY matcher (what requests and botocore use on Linux), given the
        # value instead of reading the environment. Public since Python 2, not in typeshed.
        from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if proxy_bypass_environment(f"{host}:{port}", {"no": self.no_proxy}):
            return True
        return _in_ranges(host, self.no_proxy)

    def proxies(self, url: str) -> dict[str, str | None]:
        """For one client or request to ``url``: the proxy of each scheme, None for straight.
        Given to botocore (``Config(proxies=...)``) and requests (``proxies=``) alike."""
        proxy = self.proxy_for(url)
        return {"http": proxy, "https": proxy}

    def describe(self) -> str:
        """One line for the log, without any password a proxy URL holds."""
        parts = [f"{scheme} through {shown_url(proxy)}" for scheme, proxy in self._schemes() if proxy]
        if self.no_proxy:
            parts.append(f"straight to NO_PROXY's {self.no_proxy}")
        if self.ca_bundle:
            parts.append(f"TLS trusting AWS_CA_BUNDLE {self.ca_bundle}")
        return "Network: " + "; ".join(parts) + "."

    def _schemes(self) -> tuple[tuple[str, str | None], ...]:
        return (("https", self.https_proxy), ("http", self.http_proxy))


def _in_ranges(host: str, no_proxy: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for given in no_proxy.split(","):
        entry = given.strip()
        if "/" not in entry:
            continue
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def credentials_misplaced(url: str) -> bool:
    """True when an ``@`` follows the URL's authority: a user or password holding ``/``, ``?``
    or ``#`` unencoded, which the URL parsers read as the start of a path, so that the host they
    see is the user (and the "port" part of the password)."""
    rest = url.split("://", 1)[1] if "://" in url else url
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    return "@" in rest[end:]


def shown_url(url: str) -> str:
    """A proxy URL without its user, password or path: scheme, host and port only (a proxy URL
    has no path; one that looks like it has holds a password: ``credentials_misplaced``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def url_secrets(url: str | None) -> tuple[str, ...]:
    """What a proxy URL holds that must be masked in every output, whatever its length: the
    password, as written and percent-decoded, and the user and password together. Everything
    between ``://`` and the last ``@`` is the user part, whatever it holds (a ``/`` in a
    password included), as curl reads it."""
    if not url:
        return ()
    rest = url.split("://", 1)[1] if "://" in url else url
    userinfo, at, _ = rest.rpartition("@")
    if not at or not userinfo:
        return ()
    _user, colon, password = userinfo.partition(":")
    forms = {userinfo, unquote(userinfo)}
    if colon and password:
        forms |= {password, unquote(password)}
    return tuple(sorted(form for form in forms if form))
