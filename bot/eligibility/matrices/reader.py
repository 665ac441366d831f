"""The strict YAML reader every data file of the matrices goes through (a leaf: the package and its
modules import it, it imports none of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
