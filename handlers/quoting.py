"""Commenters' words in the bot's replies, made inert: a quote can show what was typed, never act.

A quote is an inline code span, so Markdown inside it (a link, an image, an `@mention`, HTML) shows as text;
its fence is longer than any run of backticks in the text, so a backtick cannot close it early. Bidi
controls (which can make the reply read differently from what it says) are shown as their code points,
line breaks as spaces, and a long quote is cut.
"""

from __future__ import annotations

import re

MAX_QUOTE = 60
# Embeddings, overrides, isolates and marks that reorder text (Unicode TR9), plus the Arabic letter mark.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """`text` as an inert inline code span, at most `limit` characters of it."""
    text = _BREAKS.sub(" ", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"
