"""Markdown → HTML for model cards and comments, sanitised so nothing a repo owner or commenter writes runs.

Cards use HTML (`<details>`, `<img>`, `<div align=center>`), so raw HTML is parsed like on the Hub and then
sanitised with nh3 (ammonia); bare URLs become links, as on the Hub (the bot's replies hold
release URLs): no `<script>`, no `on*=` attributes, no `style` except a table cell's
`text-align` (what markdown-it writes for aligned columns), and links only to http(s), mailto and
relative URLs.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_PARSER = MarkdownIt("commonmark", {"html": True, "linkify": True})
_PARSER.enable(["table", "strikethrough", "linkify"])
_CELL_ATTRIBUTES = {"align", "colspan", "rowspan", "style"}
_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "th": set(nh3.ALLOWED_ATTRIBUTES.get("th", ())) | _CELL_ATTRIBUTES,
    "td": set(nh3.ALLOWED_ATTRIBUTES.get("td", ())) | _CELL_ATTRIBUTES,
    "div": {"align"},
    "p": {"align"},
    "details": {"open"},
    "code": {"class"},
}


def render(text: str) -> str:
    """Safe HTML for a Markdown text (GitHub-style tables and ~~strikethrough~~ included)."""
    return nh3.clean(
        _PARSER.render(text),
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        filter_style_properties={"text-align"},
        clean_content_tags={"script", "style"},
    )
