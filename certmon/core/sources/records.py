"""Streaming readers: NDJSON (one record a line, as Suricata's eve-log and Wazuh's alerts.json write it) or one
JSON array, told apart by the first byte that is not blank. Chunks are pushed in; memory holds one chunk and the
records parsed from it, whatever the size of the file. Depth is measured before parsing (see core.nesting): a line
or an array nested deeper than MAX_DEPTH is refused, since the parsers' memory grows with the square of depth."""

from __future__ import annotations

from typing import Any

import ijson
import orjson

from certmon.core.nesting import MAX_DEPTH, DepthScanner, nesting_error, too_deep

MAX_LINE_BYTES = 4 * 1024 * 1024  # an EVE alert with payload and packet is a few KiB; anything huge is garbage
CHUNK_BYTES = 1024 * 1024


class RecordError(ValueError):
    """A line or array item that is not valid JSON."""


Item = tuple[int, Any]  # (line number or 1-based array position, the record or a RecordError)


class RecordReader:
    def __init__(self) -> None:
        self._mode: str | None = None
        self._tail = b""
        self._line = 0
        self._skipping = False  # inside a line that is too long: drop bytes up to its end
        self._items: list[Any] = []
        self._array: Any = None
        self._array_count = 0
        self._array_failed = False
        self._depth = DepthScanner(MAX_DEPTH + 1)  # the array itself is one level; its records get MAX_DEPTH

    def feed(self, chunk: bytes) -> list[Item]:
        if not chunk:
            return []
        if self._mode is None:
            start = chunk.lstrip()
            if not start:
                return []
            self._mode = "array" if start.startswith(b"[") else "lines"
            if self._mode == "array":
                self._array = ijson.items_coro(_Sink(self._items), "item", use_float=True)
        if self._mode == "array":
            return self._feed_array(chunk)
        return self._feed_lines(chunk)

    def close(self) -> list[Item]:
        if self._mode == "array":
            return self._feed_array(b"", final=True)
        out: list[Item] = []
        if self._tail.strip() and not self._skipping:
            self._line += 1
            out.append(self._decode(self._tail))
        self._tail = b""
        return out

    def _feed_lines(self, chunk: bytes) -> list[Item]:
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        out: list[Item] = []
        for raw in lines:
            self._line += 1
            if self._skipping:
                self._skipping = False
                out.append((self._line, RecordError(f"line longer than {MAX_LINE_BYTES} bytes")))
                continue
            if raw.strip():
                out.append(self._decode(raw))
        if len(self._tail) > MAX_LINE_BYTES:
            self._tail = b""
            self._skipping = True
        return out

    def _decode(self, raw: bytes) -> Item:
        if too_deep(raw):
            return self._line, RecordError(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return self._line, orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._line, RecordError(f"not valid JSON: {exc}")

    def _feed_array(self, chunk: bytes, final: bool = False) -> list[Item]:
        if self._array_failed:
            return []
        try:
            if chunk and not self._depth.feed(chunk):
                # The whole body is refused, not one record: nothing after this point can be read as records.
                self._array_failed = True
                raise nesting_error(f"after item {self._array_count + len(self._items)} of the array")
            if chunk:
                self._array.send(chunk)
            if final:
                self._array.close()
        except ijson.JSONError as exc:
            self._array_failed = True
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            position = self._array_count + len(self._items)
            self._items.append(
                RecordError(f"not valid JSON after item {position} ({first_line}); the rest of the array is unreadable")
            )
        out: list[Item] = []
        for item in self._items:
            self._array_count += 1
            out.append((self._array_count, item))
        self._items.clear()
        return out


class _Sink:
    """The target ijson pushes each array item into."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def send(self, value: Any) -> None:
        self._items.append(value)

    def close(self) -> None:
        pass
