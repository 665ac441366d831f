"""Card metadata validated as the Hub validates it, with the Hub's messages.

The Hub checks README front matter with Joi schemas, so its messages have Joi's shape; the texts used
here are the ones users have quoted from the Hub:
- `"license" must be one of [...]` (the `"colorFrom" must be one of [red, yellow, ...]` form quoted
  from `validate-yaml` in CI logs; huggingface_hub's own tests match `'"license" must be one of'`);
- `"base_model" with value "X" is not valid. Use a model id from https://hf.co/models.` (quoted from
  `upload_folder` failures, raised as `ValueError: Invalid metadata in README.md.`);
- `"model-index[0].results[0].metrics" must be an array`, `"model-index[0].results[0].dataset.config"
  must be a string` (Joi paths, quoted from `validate-yaml` 400 answers);
- `base_model_relation` takes `adapter`, `merge`, `quantized` or `finetune` (hub-docs model-cards.md);
- `new_version` names one existing model (hub-docs model-cards.md; the message is `base_model`'s shape).
Licence ids are hub-docs' repositories-licenses.md list; `model-index` follows hub-docs' modelcard.md
(required: `name`, `results`, each with `task.type`, `dataset.type`, `dataset.name` and `metrics` with
`type` and `value`; `source.url` when `source` is given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# hub-docs repositories-licenses.md, in its order (the order the Hub's message lists them in)
LICENSE_IDS = (
    "apache-2.0",
    "mit",
    "openrail",
    "bigscience-openrail-m",
    "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "c-uda",
    "cc",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "etalab-2.0",
    "eupl-1.1",
    "eupl-1.2",
    "agpl-3.0",
    "gfdl",
    "gpl",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl",
    "lgpl-2.1",
    "lgpl-3.0",
    "isc",
    "h-research",
    "intel-research",
    "lppl-1.3c",
    "ms-pl",
    "apple-ascl",
    "apple-amlr",
    "mpl-2.0",
    "odc-by",
    "odbl",
    "openmdw-1.0",
    "openmdw-1.1",
    "openrail++",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
    "pddl",
    "lgpl-lr",
    "deepfloyd-if-license",
    "fair-noncommercial-research-license",
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "grok2-community",
    "gemma",
    "unknown",
    "other",
)
LICENSES = frozenset(LICENSE_IDS)
RELATIONS = ("adapter", "merge", "quantized", "finetune")
INVALID = "Invalid metadata in README.md."


def validate(card: dict[str, Any], repo_type: str, model_exists: Callable[[str], bool]) -> list[str]:
    """The Hub's error messages for this front matter ([] when it is valid)."""
    errors: list[str] = []
    if "license" in card:
        _one_or_many(card["license"], "license", errors, _license)
    if repo_type == "model":
        if "base_model" in card:
            _one_or_many(card["base_model"], "base_model", errors, _model_id("base_model", model_exists))
        if "new_version" in card:
            _model_id("new_version", model_exists)(card["new_version"], "new_version", errors)
        if "base_model_relation" in card and card["base_model_relation"] not in RELATIONS:
            errors.append(f'"base_model_relation" must be one of [{", ".join(RELATIONS)}]')
        if "model-index" in card:
            _model_index(card["model-index"], errors)
    return errors


Check = Callable[[Any, str, list[str]], None]


def _one_or_many(value: Any, path: str, errors: list[str], check: Check) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            check(item, f"{path}[{i}]", errors)
    else:
        check(value, path, errors)


def _license(value: Any, path: str, errors: list[str]) -> None:
    if value not in LICENSES:
        errors.append(f'"{path}" must be one of [{", ".join(LICENSE_IDS)}]')


def _model_id(field: str, model_exists: Callable[[str], bool]) -> Check:
    """A check that a value is the id of an existing model (the message names `field`, not the item)."""

    def check(value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, str) or not model_exists(value):
            shown = value if isinstance(value, str) else repr(value)
            errors.append(
                f'"{field}" with value "{shown}" is not valid. Use a model id from https://hf.co/models.'
            )

    return check


def _model_index(value: Any, errors: list[str]) -> None:
    if not _is(value, list, "model-index", errors):
        return
    for i, entry in enumerate(value):
        at = f"model-index[{i}]"
        if not _is(entry, dict, at, errors):
            continue
        _field(entry, "name", str, at, errors)
        results = _field(entry, "results", list, at, errors)
        for j, result in enumerate(results or []):
            _result(result, f"{at}.results[{j}]", errors)


def _result(result: Any, at: str, errors: list[str]) -> None:
    if not _is(result, dict, at, errors):
        return
    task = _field(result, "task", dict, at, errors)
    if task is not None:
        _field(task, "type", str, f"{at}.task", errors)
        _optional(task, "name", str, f"{at}.task", errors)
    dataset = _field(result, "dataset", dict, at, errors)
    if dataset is not None:
        for key in ("type", "name"):
            _field(dataset, key, str, f"{at}.dataset", errors)
        for key in ("config", "split", "revision"):
            _optional(dataset, key, str, f"{at}.dataset", errors)
    metrics = _field(result, "metrics", list, at, errors)
    for k, metric in enumerate(metrics or []):
        where = f"{at}.metrics[{k}]"
        if not _is(metric, dict, where, errors):
            continue
        _field(metric, "type", str, where, errors)
        if "value" not in metric:
            errors.append(f'"{where}.value" is required')
        for key in ("name", "config", "verifyToken"):
            _optional(metric, key, str, where, errors)
        _optional(metric, "verified", bool, where, errors)
    source = _optional(result, "source", dict, at, errors)
    if source is not None:
        _field(source, "url", str, f"{at}.source", errors)
        _optional(source, "name", str, f"{at}.source", errors)


_TYPE_WORDS = {str: "a string", list: "an array", dict: "of type object", bool: "a boolean"}


def _is(value: Any, kind: type, path: str, errors: list[str]) -> bool:
    if isinstance(value, kind):
        return True
    errors.append(f'"{path}" must be {_TYPE_WORDS[kind]}')
    return False


def _field(parent: dict[str, Any], key: str, kind: type, at: str, errors: list[str]) -> Any:
    """A required field of type `kind` (None, with its error recorded, when missing or mistyped)."""
    if key not in parent or parent[key] is None:
        errors.append(f'"{at}.{key}" is required')
        return None
    return parent[key] if _is(parent[key], kind, f"{at}.{key}", errors) else None


def _optional(parent: dict[str, Any], key: str, kind: type, at: str, errors: list[str]) -> Any:
    if parent.get(key) is None:
        return None
    return parent[key] if _is(parent[key], kind, f"{at}.{key}", errors) else None
