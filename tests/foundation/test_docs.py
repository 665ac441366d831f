"""The project's own documents point at things that exist: links in README and docs/, paths in pyproject."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_name_files_in_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in targets if not (document.parent / t.split("#")[0]).resolve().exists()]
    assert not missing, f"{document.name} links files that are not in the repository: {missing}"
    inside = [t for t in targets if ROOT not in (document.parent / t).resolve().parents]
    assert not inside, f"{document.name} links outside the repository: {inside}"


def test_the_readme_links_every_document_under_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{doc.name})" in readme, doc.name


def test_pyproject_comments_point_at_things_that_exist() -> None:
    comments = [
        line.split("#", 1)[1] for line in (ROOT / "pyproject.toml").read_text().splitlines() if "#" in line
    ]
    paths = [p.rstrip(".,)") for c in comments for p in re.findall(r"(?<![\w./-])[\w.-]+/[\w./-]*", c)]
    assert paths, "the test reads no path from pyproject.toml's comments"
    for path in paths:
        assert (ROOT / path).exists(), f"pyproject.toml's comment names {path}, which does not exist"
    for document, section in re.findall(r'([\w/.-]+\.md), "([^"]+)"', "\n".join(comments)):
        text = (ROOT / document).read_text(encoding="utf-8")
        assert re.search(rf"^#+ {re.escape(section)}$", text, re.M), f"{document} has no section {section!r}"


def test_the_architecture_page_names_every_module_of_the_bot_and_handlers() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(ROOT))
        for folder in ("bot", "handlers", "state")
        for path in (ROOT / folder).glob("**/*.py")
        if path.name != "__init__.py"
        and not {"hubsim", "commands"} & set(path.parts[:-1])
        and "migrations" not in path.parts
        and not re.search(
            rf"`{re.escape(path.stem)}`|{re.escape(path.name)}|{re.escape(path.stem)}\.py", page
        )
    ]
    assert not missing, f"docs/architecture.md does not say where these live: {missing}"


# A path as documents and the CLI cite it: a top-level folder of the repository and what is under it, or a
# Markdown file named on its own (`DESIGN.md`) outside a command example (whose files are the reader's own).
# URL paths (`/api/status`) and placeholders are not paths.
_CITED_PATH = re.compile(r"(?<![\w/.:<{-])(\.?[A-Za-z_][\w-]*(?:/[\w.-]+)+/?|[\w-]+\.md)(?![\w/{<])")


def _cli_texts(tmp_path: Path) -> dict[str, str]:
    """What the CLI prints that may cite a file: every command's help and a plan's notes (Jobs included)."""
    from click.testing import CliRunner

    from bot.cli import _COMMANDS, cli

    runner, texts = CliRunner(), {}
    commands = [[]] + [[name] for name, _, _ in _COMMANDS]
    commands += [["watch", sub] for sub in ("add", "list", "remove")] + [["webhooks", "sync"]]
    for args in commands:
        texts[" ".join(["quantbot", *args, "--help"])] = runner.invoke(cli, [*args, "--help"]).output
    model = tmp_path / "model"
    model.mkdir()
    config = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
              "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
              "num_key_value_heads": 8, "vocab_size": 32000, "torch_dtype": "bfloat16"}  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    plan = runner.invoke(cli, ["plan", str(model), "--sm", "90,89", "--executor", "hf-jobs"])
    assert plan.exit_code == 0, plan.output
    texts["quantbot plan --executor hf-jobs"] = plan.output
    return texts


def test_every_path_the_cli_and_the_documents_cite_exists(tmp_path: Path) -> None:
    texts = {str(d.relative_to(ROOT)): d.read_text(encoding="utf-8") for d in DOCUMENTS}
    texts["templates/status.html.j2"] = (ROOT / "templates" / "status.html.j2").read_text(encoding="utf-8")
    texts |= _cli_texts(tmp_path)
    roots = {p.name for p in ROOT.iterdir()} - {"out"}  # out/ is made by the tests themselves
    cited = {
        (where, path)
        for where, text in texts.items()
        for path in _CITED_PATH.findall(text)
        if path.split("/")[0] in roots
        or "/" not in path
        and path in _CITED_PATH.findall(re.sub(r"```.*?```", "", text, flags=re.S))
    }
    assert len(cited) > 20, cited  # the pattern finds what the documents cite
    missing = sorted(
        f"{where}: {path}"
        for where, path in cited
        if not (ROOT / path).exists() and not (ROOT / "docs" / path).exists()
    )
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_the_configuration_page_documents_every_setting_and_only_settings() -> None:
    from bot.settings import Settings

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row.split(" | ")[0])}
    assert set(Settings.model_fields) - documented == set(), "settings docs/configuration.md lacks"
    assert documented - set(Settings.model_fields) == set(), "docs/configuration.md documents no such setting"


def test_compose_points_at_a_section_that_exists() -> None:
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    document, section = re.search(r'\(([\w/.-]+\.md), "([^"]+)"\)', compose.replace("\n# ", " ")).groups()
    text = (ROOT / document).read_text(encoding="utf-8")
    assert re.search(rf"^#+ {re.escape(section)}$", text, re.M), f"{document} has no section {section!r}"
