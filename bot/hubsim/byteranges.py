"""HTTP byte ranges: a single `Range: bytes=...` request header read, and the 206 answers to it."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.responses import Response

from bot.hubsim.errors import ApiError
from bot.hubsim.routing import Call

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(call: Call, data: bytes, headers: dict[str, str], content_type: str) -> Response:
    """`data`, or the part of it a `Range` header asks for (206)."""
    return ranged(call, len(data), lambda start, end: data[start:end], headers, content_type)


def ranged(
    call: Call, size: int, read: Callable[[int, int], bytes], headers: dict[str, str], content_type: str
) -> Response:
    """Bytes `read(start, end)` of content of `size` bytes: all, or the part a `Range` header asks for."""
    wanted = requested_range(call.request.headers.get("range"), size)
    if wanted is None:
        return Response(read(0, size), headers=headers, media_type=content_type)
    start, end = wanted
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
    return Response(read(start, end + 1), status_code=206, headers=headers, media_type=content_type)


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range a single-range `Range` header asks for (None: send everything); 416 if unsatisfiable."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        error = ApiError(416, f"Range not satisfiable: {header} (size {size})")
        error.headers["Content-Range"] = f"bytes */{size}"
        raise error
    return start, end
