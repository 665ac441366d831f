"""The Jinja2 environment of every quantbot text (cards, PR descriptions, comments) under `templates/`.

Nothing is filled with a placeholder: an unknown variable is an error, and a rendered text that still
holds `{{` is refused. A card's front matter is written with a YAML dumper, not by string substitution, so
that any value quotes correctly, and it is read back with huggingface_hub's `ModelCard` parser before it
leaves here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from huggingface_hub import ModelCard
from jinja2 import Environment, PackageLoader, StrictUndefined

from bot.errors import CardError
from bot.naming import with_article


@cache
def environment() -> Environment:
    """The Jinja2 environment of every quantbot template: an unknown variable is an error, not a blank."""
    env = Environment(
        loader=PackageLoader("templates", "."),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["with_article"] = with_article  # "an INT4-AWQ", "a 4-bit"
    return env


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render `templates/<name>`; refuse output that still holds a `{{` (an unfilled placeholder)."""
    text = environment().get_template(name).render(**context)
    if "{{" in text:
        raise CardError(f"{name} rendered with an unfilled '{{{{' placeholder")
    return text


def metadata_yaml(metadata: dict[str, Any]) -> str:
    """The card's front matter: keys in the given order, lists in block style, no trailing newline."""
    text = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.rstrip("\n")


def render_card(template: str, context: dict[str, Any]) -> str:
    """A full card (front matter + body), read back with huggingface_hub's own parser."""
    text = render_template(template, {**context, "metadata": metadata_yaml(context["metadata"])})
    try:
        parsed = ModelCard(text).data.to_dict()
    except ValueError as e:
        raise CardError(f"the rendered card's metadata does not parse: {e}") from None
    if parsed != context["metadata"]:
        raise CardError("the rendered card's metadata does not read back as written")
    return text
