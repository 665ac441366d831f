"""The project's own documents point at things that exist: links in README and docs/, paths in pyproject."""

from __future__ import annotations

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
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for section in re.findall(r'README\.md, "([^"]+)"', "\n".join(comments)):
        assert re.search(rf"^#+ {re.escape(section)}$", readme, re.M), f"README has no section {section!r}"


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
