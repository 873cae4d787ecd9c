"""What the answer cache keys and refuses: a user's client's part of every key (base URL,
default headers, params, cookies, auth), and the forms a secret may take in stored bytes. Pure.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from ._requests import freeze
from ._secrets import secret_values

__all__ = ["client_part", "client_secrets", "stored_forms"]


def client_part(client: httpx.AsyncClient | None) -> Any:
    """Everything about a user's client that can change an answer (None: no client)."""
    if client is None:
        return None
    return (
        str(client.base_url),
        sorted((k.lower(), v) for k, v in client.headers.multi_items()),
        str(client.params),
        sorted((c.domain, c.path, c.name, c.value or "") for c in client.cookies.jar),
        client.follow_redirects,
        _auth_fingerprint(client.auth),
    )


def _auth_fingerprint(auth: httpx.Auth | None) -> Any:
    """Something equal for equal credentials and different for different ones (hashed later)."""
    if auth is None:
        return None
    if isinstance(auth, httpx.BasicAuth):
        return ("basic", auth._auth_header)
    if isinstance(auth, httpx.DigestAuth):
        return ("digest", auth._username, auth._password)
    state = getattr(auth, "__dict__", None)
    # A custom auth's attributes (its token...); a function's repr holds its address, so an auth
    # built from one matches only itself: never shared, at worst not found again.
    described = freeze(state) if state is not None else id(auth)
    return (type(auth).__module__, type(auth).__qualname__, described)


def client_secrets(client: httpx.AsyncClient) -> list[str]:
    found = secret_values(dict(client.headers), dict(client.params), str(client.base_url))
    found += [cookie.value or "" for cookie in client.cookies.jar]
    auth = client.auth
    if isinstance(auth, httpx.BasicAuth):
        found.append(auth._auth_header)
        found.append(auth._auth_header.split(" ", 1)[-1])
    elif isinstance(auth, httpx.DigestAuth):
        found.append(auth._password.decode("utf-8", "replace"))
    return [s for s in found if len(s) >= 4]


@functools.lru_cache(maxsize=64)  # rows of one call mostly carry the same secrets
def stored_forms(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """Each secret as it could appear in stored bytes: raw, percent-encoded, form-encoded."""
    out: set[bytes] = set()
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote(secret), quote_plus(secret)):
            out.add(form.encode("utf-8", "replace"))
    return tuple(sorted(out, key=len, reverse=True))
