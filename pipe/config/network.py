"""HTTPS_PROXY, HTTP_PROXY, NO_PROXY (and their lower-case forms) and AWS_CA_BUNDLE, parsed
into ``pipe.network.Network``. Imported only when one of them is set."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pipe.config.fields import check_url, path
from pipe.console import shown
from pipe.errors import InputError
from pipe.network import Network, credentials_misplaced, shown_url
from pipe.schema import invalid

_NO_PROXY_ENTRY = re.compile(r"\A(\*|\.?[A-Za-z0-9_.:\[\]-]+(/[0-9]{1,3})?)\Z", re.ASCII)


def load(values: Mapping[str, str], cwd: Path) -> Network:
    return Network(
        https_proxy=_proxy(values, "HTTPS_PROXY"),
        http_proxy=_proxy(values, "HTTP_PROXY"),
        no_proxy=_no_proxy(values),
        ca_bundle=_ca_bundle(values, cwd),
    )


def _one(values: Mapping[str, str], name: str) -> tuple[str, str | None]:
    """The upper-case form or the lower-case one (they must agree when both are set), and the
    name of the one given."""
    upper, lower = values.get(name), values.get(name.lower())
    if upper and lower and upper != lower:
        raise InputError(
            name,
            f"{name} and {name.lower()} disagree ({_safe(upper)} and {_safe(lower)})",
            "Set one of them, or set both to the same value.",
        )
    return (name, upper) if upper else (name.lower(), lower)


def _safe(url: str) -> str:
    """A proxy URL as a ✖ line may show it: scheme, host and port, never a user, password or path."""
    if credentials_misplaced(url):
        return "a URL whose user or password is not shown"
    try:
        return shown(shown_url(url if "://" in url else f"http://{url}"))
    except ValueError:
        return "a value that is not a URL"


def _proxy(values: Mapping[str, str], name: str) -> str | None:
    given, value = _one(values, name)
    if not value:
        return None
    url = value if "://" in value else f"http://{value}"  # as curl and requests read host:port
    if credentials_misplaced(url):
        raise invalid(
            given,
            None,
            "its user or password holds '/', '?' or '#': write them percent-encoded (%2F, %3F, %23)",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is no number
    except ValueError:
        raise invalid(given, None, "not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise invalid(given, None, f"the pipe speaks to proxies over http or https, not {parts.scheme!r}")
    check_url(given, shown_url(url))
    if parts.path not in ("", "/") or parts.query:
        raise invalid(given, _safe(value), "a proxy URL has no path")
    return url


def _no_proxy(values: Mapping[str, str]) -> str | None:
    given, value = _one(values, "NO_PROXY")
    if not value:
        return None
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    bad = [entry for entry in entries if not _NO_PROXY_ENTRY.match(entry)]
    if bad:
        raise invalid(given, value, f"{shown(bad[0])} is not a host name, address or range")
    return ",".join(entries)


def _ca_bundle(values: Mapping[str, str], cwd: Path) -> str | None:
    value = values.get("AWS_CA_BUNDLE")
    if not value:
        return None
    bundle = path(values, "AWS_CA_BUNDLE", Path(), cwd)
    try:
        found = bundle.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise invalid("AWS_CA_BUNDLE", value, "no such file")
    return str(bundle)
