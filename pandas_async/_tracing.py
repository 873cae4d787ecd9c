"""OpenTelemetry spans for a fetch: one span per call, one CLIENT span per attempt; a no-op without.

pandas_async never imports OpenTelemetry. It looks for ``opentelemetry.trace`` among the modules
the program has already imported: a program that set a tracer provider has imported it, one that
has not pays one dictionary lookup per call. When the call's span is not recorded (no SDK, no
provider set, or sampled out), the plain :class:`Timeline` runs the call, with no span per attempt.

Per attempt (a first try, a retry, a page), following OpenTelemetry's HTTP client conventions:
span name ``{method} {url.template}`` (just ``{method}`` when the URL came from a column or a
callable), kind CLIENT, ``http.request.method``, ``url.full`` (masked: user info, secret-looking
query values, and any secret the request carries, raw or percent-encoded), ``server.address``,
``server.port``, ``http.response.status_code``, ``error.type`` (the status, or the exception's
class), ``http.request.resend_count`` on retries. The call span gets a ``pandas_async.cool_down``
event when a host asks for a pause, and a ``pandas_async.cache_hit`` event per answer served
from the cache. While an attempt is sent its span is the current one, so the spans of a user's
instrumented ``httpx.AsyncClient`` nest under it.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

from ._requests import Template
from ._secrets import MASK, is_secret_name, mask_url, query_pairs, secret_forms, secret_values
from ._timeline import Timeline

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from ._requests import RequestSpec

__all__ = ["TracedTimeline", "call_timeline", "capture_parent", "url_template"]

TRACER_NAME = "pandas_async"
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)


def _otel() -> Any:
    """``opentelemetry.trace`` if the program imported it, else None (never imported here)."""
    return sys.modules.get("opentelemetry.trace")


def capture_parent() -> Any:
    """The caller's OpenTelemetry context (its current span), to parent the call's span even when
    the call runs on pandas_async's background loop; None when OpenTelemetry is not in use."""
    trace = _otel()
    if trace is None:
        return None
    context = sys.modules.get("opentelemetry.context")
    return None if context is None else context.get_current()


def url_template(template: str) -> str:
    """The path and query of a URL template, secrets masked, fields kept: ``/users/{user_id}``."""
    masked = mask_url(template).replace("%7B", "{").replace("%7D", "}")
    parts = urlsplit(masked)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def secret_fields(source: str) -> re.Pattern[str] | None:
    """A pattern matching URLs made from the template ``source`` whose groups are the values of
    its secret-named fields (``https://h/bot{token}/getMe``), or None when it has none."""
    try:
        template = Template(source)
    except ValueError:
        return None
    if not any(is_secret_name(str(f)) for f in template.fields):
        return None
    pattern = []
    for literal, field, _, _ in template.parts:
        pattern.append(re.escape(literal))
        if field is not None:
            pattern.append("([^/?#&]*)" if is_secret_name(str(field)) else "(?:[^/?#&]*)")
    return re.compile("".join(pattern))


def call_timeline(
    *,
    caller: str,
    method: str,
    template: str | None,
    rows: int,
    parent: Any,
    source: str | None = None,
) -> Timeline:
    """The timeline for one call: traced when a recording tracer provider is set, else plain.
    ``template`` names the spans; ``source`` is the URL template as given, to find secret fields.
    """
    trace = _otel()
    if trace is None:
        return Timeline()
    tracer = trace.get_tracer(TRACER_NAME)
    attributes: dict[str, Any] = {
        "http.request.method": _method(method),
        "pandas_async.rows": rows,
    }
    if template is not None:
        attributes["url.template"] = template
    span = tracer.start_span(
        f"pandas_async.{caller}",
        context=parent,
        kind=trace.SpanKind.INTERNAL,
        attributes=attributes,
    )
    if not span.is_recording():
        span.end()
        return Timeline()
    secrets = None if source is None else secret_fields(source)
    return TracedTimeline(
        trace, tracer, span, parent, method=method, template=template, secret_fields=secrets
    )


def _method(method: str) -> str:
    return method if method in _KNOWN_METHODS else "_OTHER"


class TracedTimeline(Timeline):
    """A :class:`Timeline` that also opens a CLIENT span per attempt under the call's span."""

    __slots__ = (
        "_attempt_name",
        "_call",
        "_context",
        "_forms",
        "_method",
        "_otel_context",
        "_secret_fields",
        "_template",
        "_trace",
        "_tracer",
    )

    def __init__(
        self,
        trace: Any,
        tracer: Tracer,
        call_span: Span,
        parent: Context | None,
        *,
        method: str,
        template: str | None,
        secret_fields: re.Pattern[str] | None = None,
    ) -> None:
        super().__init__()
        self._secret_fields = secret_fields
        self._forms: dict[tuple[str, ...], list[str]] = {}  # secrets -> their forms, per call
        self._trace = trace
        self._otel_context = sys.modules["opentelemetry.context"]
        self._tracer = tracer
        self._call = call_span
        self._context = trace.set_span_in_context(call_span, parent)
        self._method = _method(method)
        name = "HTTP" if self._method == "_OTHER" else self._method
        self._attempt_name = name if template is None else f"{name} {template}"
        self._template = template

    def attempt_begins(self, spec: RequestSpec, attempt: int) -> Any:
        started = super().attempt_begins(spec, attempt)
        attributes = _attempt_attributes(spec, self._method, self._secret_fields, self._forms)
        if self._template is not None:
            attributes["url.template"] = self._template
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        span = self._tracer.start_span(
            self._attempt_name,
            context=self._context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        token = self._otel_context.attach(self._trace.set_span_in_context(span, self._context))
        return started, span, token

    def attempt_ends(self, token: Any, status: int | None, error: BaseException | None) -> None:
        started, span, attached = token
        super().attempt_ends(started, status, error)
        self._otel_context.detach(attached)
        error_type: str | None = None
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                error_type = str(status)
        elif error is not None and not isinstance(error, asyncio.CancelledError):
            kind = type(error)
            error_type = f"{kind.__module__}.{kind.__qualname__}"
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()

    def cooldown_started(self, host: str, seconds: float) -> None:
        super().cooldown_started(host, seconds)
        address, port = _address(host)
        attributes: dict[str, Any] = {"server.address": address, "pandas_async.seconds": seconds}
        if port is not None:
            attributes["server.port"] = port
        self._call.add_event("pandas_async.cool_down", attributes)

    def cache_hit(self, spec: RequestSpec) -> None:
        super().cache_hit(spec)
        attributes = _attempt_attributes(spec, self._method, self._secret_fields, self._forms)
        self._call.add_event("pandas_async.cache_hit", attributes)

    def finish(self, failed_rows: int | None = None) -> None:
        already = self.ended is not None
        super().finish(failed_rows)
        if already:
            return
        call = self._call
        call.set_attribute("pandas_async.requests", len(self.statuses))
        for phase, seconds in self.breakdown().items():
            call.set_attribute(f"pandas_async.time.{phase.replace(' ', '_')}", seconds)
        if failed_rows is None:
            call.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "did not finish"))
        else:
            call.set_attribute("pandas_async.failed_rows", failed_rows)
        call.end()


def _address(authority: str) -> tuple[str, int | None]:
    host = authority.rpartition("@")[2]
    if host.startswith("["):  # [::1]:8080
        address, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port = host.partition(":")
    return address, int(port) if port.isdigit() else None


def _attempt_attributes(
    spec: RequestSpec,
    method: str,
    secret_fields: re.Pattern[str] | None = None,
    forms_cache: dict[tuple[str, ...], list[str]] | None = None,
) -> dict[str, Any]:
    url = spec.url
    if spec.params:  # the query as sent, encoded as httpx would (what matters here: the names)
        pairs = query_pairs(spec.params)
        if pairs:
            url = url.partition("#")[0] + ("&" if "?" in url else "?") + urlencode(pairs)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.full": _masked(url, spec, secret_fields, forms_cache),
    }
    scheme, _, rest = url.partition("://")
    address, port = _server(scheme, rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0])
    if address:
        attributes["server.address"] = address
    if port is not None:
        attributes["server.port"] = port
    return attributes


@functools.lru_cache(maxsize=256)
def _server(scheme: str, authority: str) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` of a URL's authority (few per call: cached)."""
    try:
        parts = urlsplit(f"{scheme}://{authority}")
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        return parts.hostname or "", port
    except ValueError:
        return "", None


def _masked(
    url: str,
    spec: RequestSpec,
    secret_fields: re.Pattern[str] | None,
    forms_cache: dict[tuple[str, ...], list[str]] | None = None,
) -> str:
    """``mask_url``, then any secret the request carries (its secret headers and params, and
    the values of secret-named template fields), in every form a text may hold it."""
    found = secret_values(spec.headers, spec.params, spec.url)
    match = None if secret_fields is None else secret_fields.match(spec.url)
    if match is not None:
        found += [unquote(v) for v in match.groups() if v]
    # mask_url changes only user info and query values: a URL with neither is kept as it is.
    masked = mask_url(url) if "?" in url or "@" in url else url
    if not found:
        return masked
    key = tuple(sorted(set(found)))
    forms = None if forms_cache is None else forms_cache.get(key)
    if forms is None:  # the rows of a call mostly carry the same secrets: work them out once
        every: set[str] = set()
        for secret in key:
            every |= secret_forms(secret)
        forms = sorted(every, key=len, reverse=True)
        if forms_cache is not None:
            if len(forms_cache) >= 64:
                forms_cache.clear()
            forms_cache[key] = forms
    for form in forms:
        masked = masked.replace(form, MASK)
    return masked
