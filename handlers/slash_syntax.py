"""Slash commands typed in Hub discussions, parsed without ever trusting the text.

A comment is for the bot when its first non-blank line starts with `/` or with `@<bot name>`. The text is
only split on whitespace and matched against fixed words: nothing a commenter types reaches a shell, a
format string, or an unbounded loop, and what an error quotes back is made inert (`handlers.quoting`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from handlers.inputs import Calibration
from handlers.quoting import quote

MAX_COMMAND_CHARS = 500
COMMANDS = ("quantize", "formats", "status", "cancel", "retry", "help")
_SM = re.compile(r"^(?:sm)?(\d{2,3})$", re.IGNORECASE)
# `org/dataset[@revision][:split]`: a Hub dataset id, then an optional branch, tag or sha, then a split.
_NAME = r"[A-Za-z0-9][\w.-]{0,95}"
_GPU = re.compile(r"^[A-Za-z0-9][\w .+-]{0,39}$")
_CALIB = re.compile(
    rf"^(?P<id>{_NAME}/{_NAME})(?:@(?P<revision>[\w.-]{{1,100}}))?(?::(?P<split>[\w.-]{{1,64}}))?$"
)

HELP = """\
I build quantized releases of this model. Commands (one per comment):

- `/quantize [formats…] [--sm 90,89] [--kv-cache none] [--calib org/dataset[@rev][:split]] [--now]` — build
  the given formats (default: every eligible format); the KV cache is FP8 where TensorRT-LLM supports it for
  this model, unless `--kv-cache none`; `--calib` calibrates with that Hub dataset; a revision pushed lately
  waits for the cooldown unless `--now`
- `/formats [--gpu L4 | --sm 89]` — list the formats this model is eligible for on each GPU architecture, and
  why others are not; for one GPU (by default the one on your Hub profile, where you made it public), which
  releases run on it and in which runtime
- `/status` — show the builds of this model and their progress
- `/cancel` — cancel the builds you started here that are still queued or running
- `/retry` — retry the failed builds of this model
- `/help` — this message

Formats: {formats}."""


@dataclass(frozen=True)
class Command:
    """One parsed command; `error` set means the bot answers with it and the help text."""

    name: str
    formats: tuple[str, ...] = ()
    sms: tuple[int, ...] = ()
    kv_cache: str | None = None  # "none" turns the default FP8 KV cache off; None keeps the default
    now: bool = False  # build without waiting for the upstream's cooldown
    calib: Calibration | None = None  # a Hub dataset to calibrate with instead of the configured one
    gpu: str | None = None  # `/formats --gpu NAME`: the GPU asked about
    error: str | None = None
    args: tuple[str, ...] = field(default=(), repr=False)


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:MAX_COMMAND_CHARS]
    return ""


def addressed_to_bot(text: str, bot_name: str) -> str | None:
    """The command part of a comment if it is for the bot, else None (the bot stays silent)."""
    line = _first_line(text)
    mention = f"@{bot_name}".lower()
    if line.lower().startswith(mention):
        rest = line[len(mention) :].strip()
        return rest if rest.startswith("/") else "/" + rest if rest else "/help"
    return line if line.startswith("/") else None


def _parse_sms(value: str) -> tuple[tuple[int, ...], str | None]:
    sms: list[int] = []
    for part in value.split(","):
        match = _SM.match(part.strip())
        if not match:
            return (), f"{quote(part.strip(), 20)} is not an SM (write e.g. `--sm 90,89`)"
        sms.append(int(match.group(1)))
    return tuple(dict.fromkeys(sms)), None


def parse_command(text: str, bot_name: str, known_formats: tuple[str, ...]) -> Command | None:
    """Parse a comment; None when it is not for the bot. Unknown words give a Command with `error`."""
    line = addressed_to_bot(text, bot_name)
    if line is None:
        return None
    words = line[1:].split()
    if not words:
        return Command("help")
    name, args = words[0].lower(), words[1:]
    if name not in COMMANDS:
        return Command("help", error=f"I don't know the command {quote('/' + name, 30)}.")
    if name == "formats":
        return _formats(args)
    if name != "quantize":
        return Command(name, args=tuple(args))
    formats: list[str] = []
    sms: tuple[int, ...] = ()
    kv_cache: str | None = None
    now = False
    calib: Calibration | None = None
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--now":
            now, i = True, i + 1
            continue
        if word.startswith("--calib"):
            value = word.split("=", 1)[1] if "=" in word else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in word else 2
            match = _CALIB.match(value)
            if match is None:
                return Command(
                    "help", error=f"`--calib {quote(value, 40)}`: write `--calib org/dataset[@rev][:split]`"
                )
            calib = Calibration(match["id"], match["revision"], match["split"] or "train")
            continue
        if word.startswith(("--sm", "--kv-cache")):
            value = word.split("=", 1)[1] if "=" in word else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in word else 2
            if word.startswith("--kv-cache"):
                if value.lower() != "none":
                    return Command("help", error=f"`--kv-cache {value[:20]}`: only `--kv-cache none` exists")
                kv_cache = "none"
                continue
            sms, error = _parse_sms(value)
            if error:
                return Command("help", error=error)
            continue
        fmt = word.lower().strip(",")
        if fmt not in known_formats:
            return Command("help", error=f"{quote(word, 30)} is not a format I build.")
        formats.append(fmt)
        i += 1
    return Command(
        "quantize", formats=tuple(dict.fromkeys(formats)), sms=sms, kv_cache=kv_cache, now=now, calib=calib
    )


def _formats(args: list[str]) -> Command:
    """`/formats [--gpu NAME | --sm N]`: a GPU's name may hold spaces (`--gpu RTX 4090`)."""
    gpu: str | None = None
    sms: tuple[int, ...] = ()
    i = 0
    while i < len(args):
        word = args[i]
        value, i = (word.split("=", 1)[1], i + 1) if "=" in word else ("", i + 1)
        if word.startswith("--gpu"):
            words = [value] if value else []
            while i < len(args) and not args[i].startswith("--"):
                words.append(args[i])
                i += 1
            gpu = " ".join(words)
            if not gpu:
                return Command("help", error="`--gpu` needs a GPU's name, e.g. `--gpu L4`")
            if not _GPU.match(gpu):
                return Command("help", error=f"`--gpu {quote(gpu, 30)}`: name a GPU, e.g. `--gpu L4`")
        elif word.startswith("--sm"):
            if not value and i < len(args):
                value, i = args[i], i + 1
            sms, error = _parse_sms(value)
            if error:
                return Command("help", error=error)
        else:
            return Command("help", error=f"`/formats` takes `--gpu NAME` or `--sm N`, not {quote(word, 30)}.")
    return Command("formats", sms=sms[:1], gpu=gpu)


def help_text(known_formats: tuple[str, ...]) -> str:
    return HELP.format(formats=", ".join(f"`{f}`" for f in known_formats))
