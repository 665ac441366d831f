"""Release repo ids and display names, from templates in the settings.

A release repo is named from a template such as `{namespace}/{model}-{FORMAT}-TensorRT-LLM`; the
placeholders are the same for every template so that an operator can rename releases without code:

| placeholder | example (`TheDrummer/Magidonia-24B-v4.3`, `int4_awq`, bot namespace `quantbot`) |
|---|---|
| `{namespace}` | `quantbot` (the bot's namespace) |
| `{owner}` | `TheDrummer` (the upstream namespace) |
| `{model}` | `Magidonia-24B-v4.3` (the upstream name) |
| `{format}` | `int4_awq` (the canonical format id) |
| `{FORMAT}` | `INT4-AWQ` (the display name cards use) |
"""

from __future__ import annotations

import re
import string

from bot.errors import ConfigError

# Display names of the canonical format ids (DESIGN.md), as cards and repo names show them.
FORMAT_DISPLAY = {
    "fp8": "FP8",
    "int8_sq": "INT8-SQ",
    "int4_awq": "INT4-AWQ",
    "w4a8_awq": "W4A8-AWQ",
    "nvfp4": "NVFP4",
    "gptq": "GPTQ",
}

PLACEHOLDERS = frozenset({"namespace", "owner", "model", "format", "FORMAT"})
# The Hub's rule for a repo name: letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters.
_REPO_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")


def display_format(format_id: str) -> str:
    """`int4_awq` → `INT4-AWQ`; an id this table does not know is shown upper-cased."""
    return FORMAT_DISPLAY.get(format_id, format_id.upper().replace("_", "-"))


# Letters whose spoken name starts with a vowel sound: an FP8, an NVFP4, an INT4-AWQ (but a GPTQ, a W4A8-AWQ).
_VOWEL_LETTERS = frozenset("AEFHILMNORSX")


def with_article(phrase: str) -> str:
    """`INT4-AWQ` → `an INT4-AWQ`, `8-bit` → `an 8-bit`: the indefinite article as the phrase is read aloud
    (an acronym letter by letter, a number as a number, a word as a word)."""
    head = re.split(r"[-\s]", phrase, maxsplit=1)[0]
    if head.isdigit():  # eight…, eleven, eighteen (and their thousands) start with a vowel sound
        vowel = head.startswith("8") or (len(head) % 3 == 2 and head[:2] in {"11", "18"})
    elif head.isupper():
        vowel = head[0] in _VOWEL_LETTERS
    else:
        vowel = head[:1].lower() in set("aeiou")
    return f"{'an' if vowel else 'a'} {phrase}"


def check_template(template: str) -> None:
    """Reject a repo id template with unknown placeholders or no namespace part (a ConfigError)."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ConfigError(f"invalid repo name template {template!r}: {e}") from None
    if unknown := fields - PLACEHOLDERS:
        raise ConfigError(
            f"repo name template {template!r} uses unknown placeholders {sorted(unknown)}; "
            f"known: {sorted(PLACEHOLDERS)}"
        )
    if template.count("/") != 1:
        raise ConfigError(f"repo name template {template!r} must look like 'namespace/name'")


def release_repo_id(template: str, *, namespace: str, upstream: str, format_id: str) -> str:
    """The release repo id for `upstream` in `format_id`, checked against the Hub's naming rules."""
    check_template(template)
    owner, _, model = upstream.rpartition("/")
    repo_id = template.format(
        namespace=namespace, owner=owner, model=model, format=format_id, FORMAT=display_format(format_id)
    )
    ns, _, name = repo_id.partition("/")
    for part, what in ((ns, "namespace"), (name, "name")):
        if not _REPO_NAME.fullmatch(part) or "--" in part or ".." in part:
            raise ConfigError(
                f"repo name template {template!r} gives {repo_id!r}, whose {what} is not a valid Hub name "
                "(letters, digits, '-', '_', '.'; at most 96 characters)"
            )
    return repo_id
