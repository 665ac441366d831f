"""How every data file of the matrices is read: strict YAML, then a pydantic model of the file, and every
error as `<file>: <entry>: <problem>` (a leaf: the package and its modules import it, it imports none of
them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.errors import MatrixError

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """A YAML data file, strictly (duplicate keys refused); a `MatrixError` names the file and line."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (safe loader)
    except FileNotFoundError:
        raise MatrixError(f"{path.name}: missing support-matrix file {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "file"
        raise MatrixError(
            f"{path.name}: {where}: not valid YAML: {getattr(e, 'problem', None) or e}"
        ) from None


Text = Annotated[str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v), Field(min_length=1)]
"""A non-empty string, stripped."""
Version = Annotated[
    str, BeforeValidator(lambda v: str(v).strip() if v is not None else v), Field(min_length=1)
]
"""A version as written (`0.21` in YAML is a number; it is read as its text)."""
Positive = Annotated[float, Field(gt=0, strict=True)]


class Strict(BaseModel):
    """A data file's model: every key known, nothing coerced but what a field says."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(BaseModel):
    """Where a table comes from: the document and its version (other keys, such as a URL, are kept aside)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    document: Text
    version: Version


M = TypeVar("M", bound=BaseModel)


def fail(path: Path, entry: str, problem: str) -> MatrixError:
    """`<file>: <entry>: <problem>`, the form of every error about a data file."""
    return MatrixError(f"{path.name}: {entry}: {problem}")


def validated(model: type[M], path: Path, data: Any, at: str = "") -> M:
    """`data` (the entry `at` of the file, or all of it) read as `model`; else a `MatrixError` naming the
    file, the entry and the problem."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])  # a typo'd key first
        raise fail(path, _entry(at, first["loc"]), _problem(first)) from None


def _entry(at: str, loc: tuple[int | str, ...]) -> str:
    """`("flavors", "l4x1", "gpu")` → `flavors.l4x1.gpu`; `("model_types", 3)` → `model_types[3]`."""
    text = at
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "top level"


_PROBLEMS = {
    "extra_forbidden": "unknown key",
    "missing": "missing",
    "string_type": "expected a non-empty string, got {given!r}",
    "string_too_short": "expected a non-empty string, got {given!r}",
    "dict_type": "expected a mapping, got {kind}",
    "model_type": "expected a mapping, got {kind}",
    "model_attributes_type": "expected a mapping, got {kind}",
    "list_type": "expected a list, got {kind}",
    "too_short": "expected a non-empty list",
    "bool_type": "expected true or false, got {given!r}",
    "int_type": "expected an integer, got {given!r}",
    "int_parsing": "expected an integer, got {given!r}",
    "float_type": "expected a positive number, got {given!r}",
    "greater_than": "expected a positive number, got {given!r}",
    "greater_than_equal": "expected a number of at least {limit}, got {given!r}",
}


def _problem(error: Any) -> str:
    """pydantic's error in the words of the data files' other errors."""
    given = error.get("input")
    limit = (error.get("ctx") or {}).get("ge")
    template = _PROBLEMS.get(error["type"])
    return (
        template.format(given=given, kind=type(given).__name__, limit=limit)
        if template
        else str(error["msg"])
    )
