"""Numbers as people read them: `426.6K` parameters, `0.8 MiB`, `15.2 GiB`, `3 min 05 s`."""

from __future__ import annotations

_COUNTS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
_SIZES = ((1024**4, "TiB"), (1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB"))


def count(n: float) -> str:
    """A count with a thousands suffix: 426624 → `426.6K`, 7.24e9 → `7.2B`, 950 → `950`."""
    for size, suffix in _COUNTS:
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:g}"


def size(n: float) -> str:
    """Bytes in the largest binary unit that keeps the figure readable: 853248 → `0.8 MiB`."""
    for unit, suffix in _SIZES:
        if abs(n) >= unit * 0.75:
            return f"{n / unit:.1f} {suffix}"
    return f"{int(n)} B"


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 04 min`: short enough for a table cell or a progress line."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
