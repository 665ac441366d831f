"""Markdown → HTML for model cards and comments, sanitised so nothing a repo owner or commenter writes runs.

Cards use HTML (`<details>`, `<img>`, `<div align=center>`), so raw HTML is parsed like on the Hub and then
sanitised with nh3 (ammonia): no `<script>`, no `on*=` attributes, no `style` except a table cell's
`text-align` (what markdown-it writes for aligned columns), and links only to http(s), mailto and
relative URLs. Bare URLs become links, as on the Hub (the bot's replies hold release URLs). In a card,
relative links point into the repo like on the Hub: images at the file (`resolve`), links at its page
(`blob`).
"""

from __future__ import annotations

from urllib.parse import urljoin

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


def render(text: str, files: tuple[str, str] | None = None) -> str:
    """Safe HTML for a Markdown text (GitHub-style tables and ~~strikethrough~~ included).

    `files`: the (page, file) URL prefixes of a card's revision, e.g. (`/org/m/blob/main/`,
    `/org/m/resolve/main/`), that its relative links and images resolve against."""
    tokens = _PARSER.parse(text)
    if files is not None:
        pages, raw = files
        for token in tokens:
            for child in token.children or ():
                for attr, base in (("href", pages), ("src", raw)):
                    if isinstance(value := child.attrs.get(attr), str):
                        child.attrSet(attr, _resolve(value, base))
    return nh3.clean(
        _PARSER.renderer.render(tokens, _PARSER.options, {}),
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        filter_style_properties={"text-align"},
        clean_content_tags={"script", "style"},
        url_relative=(lambda url: _resolve(url, files[0])) if files else None,
    )


def _resolve(url: str, base: str) -> str:
    """`url` against `base` when it is a relative path (not `#anchor`, `/root` or `scheme:`)."""
    if url.startswith(("#", "/")) or ":" in url.split("/", 1)[0]:
        return url
    return urljoin(base, url)
