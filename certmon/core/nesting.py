"""How deeply JSON nests, measured on the raw bytes before any parser sees them.

Parsers pay for depth: Python's json recurses (a RecursionError past about 1,000 levels), and ijson keeps a path
for every open level, so memory grows with the square of the depth. No record certmon reads nests more than a
handful of levels, so text nested deeper than MAX_DEPTH is refused before it is parsed.
"""

from __future__ import annotations

import re
from itertools import accumulate

from certmon.core.errors import BadRequest

MAX_DEPTH = 64  # levels of arrays and objects; an EVE alert nests 4, a Wazuh alert 5

# Whole strings, and runs of anything but brackets and quotes, are dropped; a string still open at the end of the
# text is kept whole (group 1), so that its brackets are not counted and the scanner knows it is inside one.
_NOT_BRACKETS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[^\[\]{}"]++|("(?:[^"\\]++|\\.)*+\\?)\Z', re.DOTALL)
_REST_OF_STRING = re.compile(rb'(?:[^"\\]++|\\.)*+', re.DOTALL)
# Opening brackets become 1 and closing ones 255, which is -1 read as a signed byte: the sums run in C.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class DepthScanner:
    """Follows the depth across chunks of one JSON text, strings and escapes split between chunks included."""

    def __init__(self, limit: int = MAX_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self._in_string = False
        self._escaped = False  # the last chunk ended with a backslash inside a string

    def feed(self, chunk: bytes) -> bool:
        """Take the next chunk; False once the text has nested deeper than the limit."""
        start = self._leave_string(chunk)
        if start is None:
            return True
        brackets = _NOT_BRACKETS.sub(rb"\1", chunk[start:])
        quote = brackets.find(b'"')
        if quote >= 0:  # the chunk ends inside a string
            tail = brackets[quote + 1 :]
            self._in_string = True
            self._escaped = (len(tail) - len(tail.rstrip(b"\\"))) % 2 == 1
            brackets = brackets[:quote]
        if not brackets:
            return self.depth <= self.limit
        steps = memoryview(brackets.translate(_STEPS)).cast("b")
        deepest = max(accumulate(steps, initial=self.depth))
        self.depth += sum(steps)
        return deepest <= self.limit

    def _leave_string(self, chunk: bytes) -> int | None:
        """Where in chunk the string the last chunk ended in closes; None when it does not close in chunk."""
        if not self._in_string:
            return 0
        start = 1 if self._escaped else 0
        self._escaped = False
        if start >= len(chunk):
            self._escaped = start > len(chunk)
            return None
        end = _REST_OF_STRING.match(chunk, start)
        position = end.end() if end else start
        if position == len(chunk):
            return None
        if chunk[position] == ord("\\"):  # a lone backslash at the very end escapes the next chunk's first byte
            self._escaped = True
            return None
        self._in_string = False
        return position + 1


def too_deep(text: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether a whole JSON text nests deeper than limit; counting brackets first makes the usual answer cheap."""
    raw = text.encode() if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return not DepthScanner(limit).feed(raw)


def nesting_error(where: str = "") -> BadRequest:
    """The 400 answering a body nested too deeply; ``where`` says where in the body, when it is known."""
    message = f"is nested deeper than {MAX_DEPTH} levels of arrays and objects" + (f" ({where})" if where else "")
    return BadRequest(f"body {message}", errors=[{"field": "body", "message": message}])
