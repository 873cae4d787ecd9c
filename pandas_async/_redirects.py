"""Following redirects without handing secrets to another origin. Pure: no I/O.

Both senders follow redirects here rather than in their HTTP library: aiohttp drops only
``Authorization``, ``Cookie`` and ``Proxy-Authorization`` on a redirect to another host, and httpx
only ``Authorization``, so an ``X-Api-Key`` or a ``Private-Token`` header would go to whichever
host a server names, and over plain http after an https -> http redirect.

The rule: a redirect to another origin (scheme, host or port differ) carries none of the
headers ``_secrets.is_secret_name`` calls secret (``Authorization``, ``Cookie``, ``X-Api-Key``,
``X-Auth-Token``, ``Private-Token``...). https -> http is another origin, so a downgrade never
sends them in clear text; the one exception is an upgrade of the same host from http on port 80
to https on port 443, as httpx allows. The request itself is still followed, without them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._secrets import without_secrets

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "redirect_headers", "redirect_method"]

MAX_REDIRECTS = 10  # as aiohttp's and httpx's defaults
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})

Origin = tuple[str, str, int | None]


def origin(scheme: str, host: str | None, port: int | None) -> Origin:
    scheme = scheme.lower()
    return scheme, (host or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def keeps_secrets(source: Origin, target: Origin) -> bool:
    """Whether a redirect from ``source`` to ``target`` may carry the request's secrets."""
    if source == target:
        return True
    # http://h(:80) -> https://h(:443): the same host, only safer.
    return source == ("http", target[1], 80) and target == ("https", source[1], 443)


def redirect_method(status: int, method: str) -> str:
    """The method of the request that follows a redirect (aiohttp's and requests' rules)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def redirect_headers(
    headers: Mapping[str, str] | None, source: Origin, target: Origin, *, body_dropped: bool
) -> dict[str, str]:
    """The headers to send to ``target``: without secrets when it is another origin."""
    out = dict(headers or {})
    if not keeps_secrets(source, target):
        out = without_secrets(out)
    if body_dropped:
        out = {k: v for k, v in out.items() if k.lower() not in _BODY_HEADERS}
    return out
