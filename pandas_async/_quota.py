"""What a server's headers say about waiting: ``Retry-After`` and quota headers. Pure.

Quota headers come in three spellings:

- GitHub and many others: ``X-RateLimit-Remaining: 12`` with ``X-RateLimit-Reset``, either epoch
  seconds (GitHub) or seconds to wait; ``X-RateLimit-Reset-After`` is seconds to wait.
- Earlier IETF drafts: ``RateLimit-Remaining`` / ``RateLimit-Reset`` (seconds to wait), or one
  ``RateLimit: limit=100, remaining=50, reset=30`` field.
- The IETF draft (ietf-wg-httpapi/ratelimit-headers): ``RateLimit: "default";r=50;t=30`` (r left,
  t seconds to the reset), several policies separated by commas; the tightest one counts.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = ["Quota", "parse_quota", "parse_retry_after"]

# A reset above this is epoch seconds (GitHub), below it seconds to wait.
_EPOCH_THRESHOLD = 1_000_000_000
_PARAM = re.compile(r"([A-Za-z][\w-]*)\s*=\s*\"?(-?\d+(?:\.\d+)?)\"?")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class Quota:
    """Requests left, and seconds until the window resets (None: not said); ``limit`` per
    ``window`` seconds when the server says so (the IETF ``RateLimit-Policy: q=, w=``)."""

    __slots__ = ("limit", "remaining", "reset_in", "window")

    def __init__(
        self,
        remaining: int,
        reset_in: float | None,
        limit: int | None = None,
        window: float | None = None,
    ) -> None:
        self.remaining = remaining
        self.reset_in = reset_in
        self.limit = limit
        self.window = window

    def __repr__(self) -> str:
        return (
            f"Quota(remaining={self.remaining}, reset_in={self.reset_in}, limit={self.limit}, "
            f"window={self.window})"
        )


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number >= 0 else None


def _reset_in(value: float | None, wall: float) -> float | None:
    if value is None:
        return None
    if value > _EPOCH_THRESHOLD * 1000:  # epoch milliseconds
        value /= 1000
    if value > _EPOCH_THRESHOLD:
        return max(0.0, value - wall)
    return value


def parse_quota(headers: Mapping[str, str], *, wall: float | None = None) -> Quota | None:
    """The quota the headers announce, or None when they announce none."""
    now = time.time() if wall is None else wall
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining = _number(headers.get(prefix + "remaining"))
        if remaining is not None:
            reset = _number(headers.get(prefix + "reset-after"))
            if reset is None:
                reset = _reset_in(_number(headers.get(prefix + "reset")), now)
            return Quota(int(remaining), reset)
    field = headers.get("ratelimit")
    if field is None:
        return None
    best: Quota | None = None
    policies = _policies(headers.get("ratelimit-policy", ""))
    for item in field.split(","):
        params = {k.lower(): float(v) for k, v in _PARAM.findall(item)}
        if "r" in params:
            reset = params.get("t")
            quota = Quota(max(0, int(params["r"])), None if reset is None else max(0.0, reset))
            quota.limit, quota.window = policies.get(_name(item), (None, None))
            if best is None or quota.remaining < best.remaining:
                best = quota
    if best is None:  # the earlier draft: one field, "limit=100, remaining=50, reset=30"
        params = {k.lower(): float(v) for k, v in _PARAM.findall(field)}
        if "remaining" in params:
            reset = params.get("reset")
            best = Quota(max(0, int(params["remaining"])), None if reset is None else reset)
    return best


def _name(item: str) -> str:
    """The policy name an IETF list item starts with: ``"default";r=5`` -> ``default``."""
    return item.split(";", 1)[0].strip().strip('"')


def _policies(field: str) -> dict[str, tuple[int | None, float | None]]:
    """``RateLimit-Policy: "default";q=100;w=10`` -> ``{"default": (100, 10.0)}``."""
    policies: dict[str, tuple[int | None, float | None]] = {}
    for item in field.split(","):
        params = {k.lower(): float(v) for k, v in _PARAM.findall(item)}
        if params.get("q", 0) >= 1 and params.get("w", 0) > 0:
            policies[_name(item)] = (int(params["q"]), params["w"])
    return policies
