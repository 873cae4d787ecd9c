"""Answers kept on disk (``cache=``): successful GET/HEAD answers in one SQLite file per folder.

One table in ``<folder>/answers.sqlite``, in WAL mode so that readers never wait for a writer and
two processes can share a folder (SQLite's own file locks serialise the writers; a writer that
finds the file locked waits up to ``_BUSY_TIMEOUT``). Writes are buffered and committed in
batches, not one transaction per answer (2,000 answers, 16 MB of bodies, or a second: the key
index is a B-tree of random keys, so a transaction rewrites pages all over it, and bigger ones
share them). A call's rows are looked up in bulk (``rows``, or ``scan`` when it wants most of the
file), see _kept.py. benchmarks/bench_cache.py measures the store and the whole cached re-run.

What is stored, and what is not:

- The key is the SHA-256 of a canonical form of everything that can change the answer: method,
  URL, params, headers (names lower-cased), JSON body, form body, and for a user's client its
  base URL, default headers and params, cookies and auth. Two credentials never share an entry,
  and no credential is stored in plain text (only its hash, inside the key).
- The value is the status, reason, the response headers minus the ones that may carry a secret
  (``Set-Cookie``...) and minus the wire-form ones (``Content-Encoding``: the body is stored
  decoded), the final URL only when a redirect changed it, and the body.
- An answer that would put one of the request's secrets on disk (an API that echoes the token in
  its body, a redirect URL carrying it), raw or percent-encoded, is not kept at all.
- Only answers that succeeded (2xx, and read without error by ``parse=``) are kept; the engine
  decides that and calls :meth:`AnswerCache.put`.
- ``cache_ttl=`` is the reader's choice: an entry older than it is not used (the request is sent
  and the entry replaced). ``None``: entries never expire.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from ._cache_keys import client_part, client_secrets, stored_forms
from ._options import UNSET
from ._requests import RequestSpec, freeze
from ._secrets import is_secret_name, secret_values
from ._transport import Answer

__all__ = ["AnswerCache", "default_cache_folder", "keepable", "resolve_cache_folder"]

logger = logging.getLogger("pandas_async")

FILE_NAME = "answers.sqlite"
_FORMAT = 1  # bump when the key's canonical form or the stored record changes
_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction
_BATCH = 2_000  # answers per write transaction (500: 56 µs a write, 2,000: ~40)
_FLUSH_SECONDS = 1.0  # ...or sooner, so a long call keeps what it fetched if it is killed
_FLUSH_BYTES = 16 * 1024 * 1024  # ...or once this much body waits: memory bounded per batch
_READ_CHUNK = 500  # keys per SELECT ... IN (...), under SQLite's oldest limit of 999
_MMAP_BYTES = 256 * 1024 * 1024
_SELECT = "SELECT key, stored, status, reason, headers, url, body FROM answers"
_SKIPPED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key     BLOB PRIMARY KEY,  -- sha256 of the request's canonical form
    stored  REAL NOT NULL,     -- time.time() when written
    status  INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    headers BLOB NOT NULL,     -- JSON list of [name, value]
    url     TEXT,              -- the final URL when a redirect changed it, else NULL
    body    BLOB NOT NULL
)
"""


def default_cache_folder() -> Path:
    """The user's cache folder for pandas-async (``cache=True``), by the platform's rule.

    Linux and other Unixes: ``$XDG_CACHE_HOME/pandas-async`` (``~/.cache/pandas-async``);
    macOS: ``~/Library/Caches/pandas-async``; Windows: ``%LOCALAPPDATA%\\pandas-async\\Cache``.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "pandas-async" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "pandas-async"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base_path = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base_path / "pandas-async"


def resolve_cache_folder(cache: Any) -> Path | None:
    """The folder a validated ``cache=`` value names (None: no cache)."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return default_cache_folder()
    return Path(os.fspath(cache)).expanduser()


class AnswerCache:
    """The disk cache of one call: ``get`` before sending, ``put`` after a good answer.

    Open it on the thread that runs the call's event loop and ``close`` it at the end (which
    commits what is still buffered). ``hits`` counts answers served from disk.
    """

    def __init__(
        self,
        folder: Path,
        *,
        ttl: float | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Any = time.time,
    ) -> None:
        self.folder = folder
        self.ttl = ttl
        self.hits = 0
        self.stored = 0
        self.refused = 0  # answers not kept because they would have put a secret on disk
        self._clock = clock
        self._client = client
        self._client_part = client_part(client)  # in every key: a client's own credentials
        self._client_secrets = [] if client is None else client_secrets(client)
        self._tail = f"{self._client_part!r})"  # the canonical form's end, the same every row
        self._pending: list[tuple[Any, ...]] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._db = self._open(folder)

    @staticmethod
    def _open(folder: Path) -> sqlite3.Connection:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / FILE_NAME
            # Answers may be private: the file (and SQLite's -wal/-shm, which copy its mode)
            # readable by the user only.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            db = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            _set_up(db)
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            # Reads through a memory map: a hit's B-tree pages without a read() call each
            # (measured: 38 -> 14 µs per batched read of a 42 MB file).
            db.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        except (OSError, sqlite3.Error) as exc:
            raise OSError(
                f"cache={str(folder)!r}: cannot use this folder for the answer cache ({exc})"
            ) from exc
        return db

    # -- keys ------------------------------------------------------------------------------------

    def key(self, spec: RequestSpec) -> bytes:
        """The SHA-256 of the request's canonical form (the repr of a tuple of its parts)."""
        headers = spec.headers
        if spec.params is None and not headers and spec.json is UNSET and spec.data is None:
            # The usual GET: the same text repr() gives for the tuple below, 5x cheaper.
            text = f"({_FORMAT}, {spec.method!r}, {spec.url!r}, None, None, '-', None, {self._tail}"
        else:
            text = repr(
                (
                    _FORMAT,
                    spec.method,
                    spec.url,
                    freeze(spec.params),
                    sorted((k.lower(), str(v)) for k, v in headers.items()) if headers else None,
                    "-" if spec.json is UNSET else freeze(spec.json),
                    freeze(spec.data),
                    self._client_part,
                )
            )
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def _request_url(self, spec: RequestSpec) -> str:
        """The URL the request went to (before redirects), as the answer would report it."""
        if self._client is not None:
            return str(self._client.build_request(spec.method, spec.url, params=spec.params).url)
        url = httpx.URL(spec.url)
        return str(url.copy_merge_params(spec.params) if spec.params else url)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, spec: RequestSpec) -> Answer | None:
        """The kept answer to this request, or None (not kept, or older than ``ttl``)."""
        return self.get_many([spec])[0]

    def get_many(self, specs: Sequence[RequestSpec]) -> list[Answer | None]:
        """``get`` for many requests, one ``SELECT ... IN`` per chunk of keys (~2.5x faster)."""
        keys = [self.key(s) if keepable(s) else None for s in specs]
        rows = self.rows([k for k in keys if k is not None])
        found: list[Answer | None] = [None] * len(specs)
        for i, key in enumerate(keys):
            row = None if key is None else rows.get(key)
            if row is not None:
                self.hits += 1
                found[i] = self.answer(specs[i], row)
        return found

    def rows(self, keys: Sequence[bytes]) -> dict[bytes, tuple[Any, ...]]:
        """The kept entries for these keys, fresh enough for ``ttl``: key -> ``(key, stored,
        status, reason, headers, url, body)``. Reads only: ``hits`` is the caller's to count."""
        oldest = self._oldest()
        found: dict[bytes, tuple[Any, ...]] = {}
        for start in range(0, len(keys), _READ_CHUNK):
            chunk = keys[start : start + _READ_CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor = self._db.execute(f"{_SELECT} WHERE key IN ({marks})", chunk)
            found.update((row[0], row) for row in cursor if row[1] >= oldest)
        return found

    def scan_pays(self, wanted: int) -> bool:
        """Whether reading the whole file beats looking ``wanted`` keys up one by one: a look-up
        costs about twice a row read in order (measured: 0.6 against 0.28 s for 100,000)."""
        (last,) = self._db.execute("SELECT max(rowid) FROM answers").fetchone()
        return last is not None and wanted * 2 >= last  # rowids only grow: last >= entries

    def scan(self, wanted: Container[bytes], chunk: int) -> Iterator[list[tuple[Any, ...]]]:
        """The fresh entries whose key is ``wanted``, in the file's order, ``chunk`` rows read
        at a time (rows as :meth:`rows` gives them)."""
        oldest = self._oldest()
        cursor = self._db.execute(_SELECT)
        try:
            while batch := cursor.fetchmany(chunk):
                yield [row for row in batch if row[0] in wanted and row[1] >= oldest]
        finally:
            cursor.close()

    def _oldest(self) -> float:
        return -math.inf if self.ttl is None else self._clock() - self.ttl

    def answer(self, spec: RequestSpec, row: Sequence[Any]) -> Answer:
        """The kept answer a row of :meth:`rows` holds, as the request's answer."""
        _, _, status, reason, headers, url, body = row
        kept = _KeptAnswer(status, reason, headers, body, spec.method, url or "")
        if url is None:
            kept.spec, kept.cache = spec, self
        return kept

    # -- writing ---------------------------------------------------------------------------------

    def put(self, spec: RequestSpec, answer: Answer) -> None:
        """Keep a successful answer (buffered; committed in batches)."""
        if spec.method not in ("GET", "HEAD") or not 200 <= answer.status_code < 300:
            return
        headers = orjson.dumps(
            [
                [k, v]
                for k, v in _items(answer.headers)
                if k.lower() not in _SKIPPED_HEADERS and not is_secret_name(k)
            ]
        )
        final = str(answer.url)
        same = final == spec.url and not spec.params and self._client is None  # the usual case
        url = None if same or final == self._request_url(spec) else final
        body = bytes(answer.content)
        secrets = list(self._client_secrets)
        if spec.headers or spec.params is not None or "?" in spec.url or "@" in spec.url:
            secrets += secret_values(spec.headers, spec.params, spec.url)  # else: none to find
        if url is not None:  # a redirect's target may carry a key of its own (?token=...)
            secrets += secret_values(None, None, url)
        if secrets:
            stored = (headers, (url or "").encode(), body, answer.reason_phrase.encode())
            if any(form in part for form in stored_forms(tuple(secrets)) for part in stored):
                self.refused += 1
                logger.debug("not caching an answer that carries one of its request's secrets")
                return
        self._pending.append(
            (self.key(spec), self._clock(), answer.status_code, answer.reason_phrase,
             headers, url, body)
        )  # fmt: skip
        self._pending_bytes += len(body)
        if (
            len(self._pending) >= _BATCH
            or self._pending_bytes >= _FLUSH_BYTES
            or time.monotonic() - self._last_flush > _FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        self._last_flush = time.monotonic()
        try:
            with self._db:  # one transaction for the batch
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)", pending
                )
        except sqlite3.Error as exc:  # a full disk must not sink the call: the rows are fine
            logger.warning("pandas_async: could not write %d answers to the cache: %s",
                           len(pending), exc)  # fmt: skip
            return
        self.stored += len(pending)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()


def keepable(spec: RequestSpec) -> bool:
    """Whether an answer to this request may be kept (and so looked up): GET and HEAD only."""
    return spec.method in ("GET", "HEAD") and spec.problem is None


def _set_up(db: sqlite3.Connection) -> None:
    """WAL mode and the table. Two processes opening a new file at once: switching the journal
    mode can fail with "database is locked" at once (SQLite does not wait there), so retry."""
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _KeptAnswer(Answer):
    """An answer read from disk. Its headers and its URL (the request's, when no redirect
    changed it) are worked out only when something reads them: ``parse="json"`` needs neither,
    and building them cost more than the rest of a hit.
    """

    __slots__ = ("_headers", "_stored_headers", "_url", "cache", "spec")
    _url: str
    _headers: Mapping[str, str] | None

    def __init__(self, *args: Any) -> None:
        self.spec: RequestSpec | None = None
        self.cache: AnswerCache | None = None
        self._stored_headers: bytes = b"[]"
        super().__init__(*args)

    @property
    def headers(self) -> Mapping[str, str]:
        if self._headers is None:
            self._headers = httpx.Headers(orjson.loads(self._stored_headers))
        return self._headers

    @headers.setter
    def headers(self, value: Any) -> None:  # as stored: the JSON list of [name, value]
        if isinstance(value, bytes):
            self._stored_headers, self._headers = value, None
        else:
            self._headers = httpx.Headers(value)

    @property
    def url(self) -> str:
        if not self._url and self.spec is not None and self.cache is not None:
            self._url = self.cache._request_url(self.spec)
        return self._url

    @url.setter
    def url(self, value: str) -> None:
        self._url = value


def _items(headers: Mapping[str, str] | httpx.Headers) -> Iterable[tuple[str, str]]:
    if isinstance(headers, httpx.Headers):
        return headers.multi_items()
    items = getattr(headers, "items", None)
    return list(items()) if items is not None else []
