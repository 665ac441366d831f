"""hubsim's web pages at the Hub's own URLs, server-rendered and readable without JavaScript.

`/` lists recent repos, `/{owner}` a user's or org's repos, `/{repo}` shows the card rendered with its
metadata, downloads and likes (a signed-in user likes it there, as on the Hub), the notice of a newer
version (`new_version`), and the model tree (base models, and on a base model its quantizations, finetunes,
adapters and merges with their counts), then files, commits and discussions under the same paths as on
huggingface.co; datasets live under `/datasets/`. The API answers
first: these routes are only tried for a GET the API has no route for (see `app.HubsimApp`), so they never
shadow `/api/...`, `resolve` or the admin routes. Errors are HTML pages here, not the API's JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot.hubsim import cards, merging, modeltree, popularity, versions, views
from bot.hubsim.api_repos import repo_url
from bot.hubsim.discussions import CLOSED_STATUSES
from bot.hubsim.errors import ApiError, entry_not_found
from bot.hubsim.markdown import render
from bot.hubsim.mediatypes import is_text
from bot.hubsim.routing import Call, Router
from bot.hubsim.store import HEADS, PRS, TAGS, Commit, Repo

RECENT = 50  # repos on the home page
MAX_PREVIEW = 1_000_000  # bytes of a file or diff shown inline
_RELATIONS = {"quantized": "Quantizations", "finetune": "Finetunes", "adapter": "Adapters", "merge": "Merges"}
_PREFIXES = (("/datasets", "dataset"), ("", "model"))  # datasets first: `/datasets/x/y` is not a model

_ENV = Environment(
    loader=PackageLoader("bot.hubsim", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

Page = Callable[[Call], Response]


def register(router: Router) -> None:
    """The page routes (a router of their own: `app` consults it after the API's)."""
    router.add("GET", "/", index)
    for prefix, repo_type in _PREFIXES:
        base = prefix + "/{ns}/{name}"
        router.add("GET", base, _page(repo_page), rtype=repo_type)
        router.add("POST", base + "/like", _page(like_toggle), rtype=repo_type)
        router.add("GET", base + "/tree/{rev}/{path*}", _page(tree_page), rtype=repo_type)
        router.add("GET", base + "/blob/{rev}/{path*}", _page(blob_page), rtype=repo_type)
        router.add("GET", base + "/commits/{rev}", _page(commits_page), rtype=repo_type)
        router.add("GET", base + "/commit/{sha}", _page(commit_page), rtype=repo_type)
        router.add("GET", base + "/discussions", _page(discussions_page), rtype=repo_type)
        router.add("GET", base + "/discussions/{num}", _page(discussion_page), rtype=repo_type)
        router.add("POST", base + "/discussions/{num}/pin", _page(pin_toggle), rtype=repo_type)
    router.add("GET", "/datasets", _page(lambda call: listing(call, "dataset")))
    router.add("GET", "/models", _page(lambda call: listing(call, "model")))
    router.add("GET", "/{ns}", _page(owner_page))


def _page(handler: Page) -> Page:
    """`handler` with the Hub's errors answered as an HTML page (a hidden or missing repo is a 404)."""

    def answer(call: Call) -> Response:
        try:
            return handler(call)
        except ApiError as e:
            status = 404 if e.code == "RepoNotFound" else e.status
            return html("error.html.j2", status=status, title=f"{status}", message=e.message, code=status)

    return answer


def html(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from `templates/`."""
    return HTMLResponse(_ENV.get_template(template).render(**context), status_code=status)


# ---------------------------------------------------------------- listings


def index(call: Call) -> Response:
    """The home page: the most recently updated models and datasets."""
    return html(
        "index.html.j2",
        title="hubsim",
        models=_recent(call, "model")[:RECENT],
        datasets=_recent(call, "dataset")[:RECENT],
    )


def listing(call: Call, repo_type: str) -> Response:
    """`/models`, `/datasets`: every repo of a type, most recently updated first."""
    title = f"{repo_type.capitalize()}s"
    return html("listing.html.j2", title=title, repos=_recent(call, repo_type))


def owner_page(call: Call) -> Response:
    """`/{owner}`: a user's or an org's repos (and an org's members)."""
    name, users = call.params["ns"], call.hub.users
    if not users.namespace_exists(name):
        raise ApiError(404, f"No user or organization named {name}")
    org = users.orgs.get(name)
    return html(
        "owner.html.j2",
        title=name,
        owner=name,
        kind="Organization" if org else "User",
        members=org.members if org else [],
        orgs=[o.name for o in users.orgs_of(users.users[name])] if name in users.users else [],
        models=[r for r in _recent(call, "model") if r.owner == name],
        datasets=[r for r in _recent(call, "dataset") if r.owner == name],
    )


def _recent(call: Call, repo_type: str) -> list[Repo]:
    repos = call.hub.visible_repos(call.user, repo_type)
    return sorted(repos, key=lambda r: r.last_modified, reverse=True)


# ---------------------------------------------------------------- a repo


def _repo(call: Call) -> Repo:
    return call.hub.repo(call.user, call.params["rtype"], f"{call.params['ns']}/{call.params['name']}")


def _revision(repo: Repo, call: Call) -> tuple[str, Commit]:
    rev = call.params.get("rev", "main")
    return rev, repo.resolve(rev)


def repo_page(call: Call) -> Response:
    """The card rendered, its metadata as the Hub shows it, and the model tree."""
    repo = _repo(call)
    commit = repo.head
    facts = views.derived(call.hub, commit)
    readme = _text(call, commit, "README.md")
    files = (_file_url(repo, "blob", "main", ""), _file_url(repo, "resolve", "main", ""))
    return html(
        "repo.html.j2",
        **_repo_context(call, repo, "card"),
        facts=facts,
        card_html=render(cards.card_text(readme), files) if readme is not None else None,
        metadata=_metadata(facts),
        base_models=_base_models(call, repo),
        children=_children(call, repo),
        newer=versions.latest(call.hub, call.user, repo) if repo.type == "model" else None,
        liked=call.user is not None and call.user.name in repo.stats.likers,
        files=len(commit.files),
        size=sum(views.file_size(call.hub, oid) for oid in set(commit.files.values())),
    )


def _repo_context(call: Call, repo: Repo, tab: str) -> dict[str, Any]:
    """What every page of a repo shows: its name, tabs, and number of open discussions."""
    open_count = sum(1 for d in repo.discussions if d.status not in CLOSED_STATUSES)
    return {"title": repo.name, "repo": repo, "tab": tab, "open_discussions": open_count}


def _metadata(facts: views.Derived) -> list[tuple[str, list[str]]]:
    """The card's metadata rows shown beside it (label, values), like the Hub's header and sidebar."""
    card = facts.card
    rows = [
        ("License", _strings(card.get("license"))),
        ("Library", [facts.library_name] if facts.library_name else []),
        ("Task", [facts.pipeline_tag] if facts.pipeline_tag else []),
        ("Datasets", _strings(card.get("datasets"))),
        ("Languages", _strings(card.get("language"))),
        ("Tags", _strings(card.get("tags"))),
    ]
    return [(label, values) for label, values in rows if values]


def _base_models(call: Call, repo: Repo) -> list[dict[str, Any]]:
    """The card's `base_model`s, each with its relation and whether hubsim has it."""
    relation, bases = modeltree.parents(call.hub, repo.head)
    return [{"id": base, "relation": relation, "exists": ("model", base) in call.hub.repos} for base in bases]


def _children(call: Call, repo: Repo) -> list[tuple[str, list[Repo]]]:
    """Models whose card names this one as `base_model`, by relation (quantizations first)."""
    if repo.type != "model":
        return []
    found = modeltree.children(call.hub, call.user, repo)
    return [(_RELATIONS[relation], group) for relation, group in found.items()]


def like_toggle(call: Call) -> Response:
    """The like button: a signed-in user likes the repo, or no longer does; others are sent to sign in."""
    repo = _repo(call)
    if call.user is None:
        return _sign_in_first(repo_url("", repo))
    toggle = popularity.unlike if call.user.name in repo.stats.likers else popularity.like
    toggle(call.hub, call.user, repo)
    return RedirectResponse(repo_url("", repo), status_code=303)


def _sign_in_first(back_to: str) -> Response:
    """A button pressed by a browser nobody signed in: the sign-in form, then back to the page."""
    return RedirectResponse(f"/login?next={quote(back_to)}", status_code=303)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if isinstance(v, str | int | float)] if isinstance(value, list) else []


def _text(call: Call, commit: Commit, path: str) -> str | None:
    """A file's text (None when absent, too big, not UTF-8 or stored with LFS, as on the Hub)."""
    oid = commit.files.get(path)
    if oid is None or call.hub.blobs.size(oid) > MAX_PREVIEW or call.hub.lfs_pointer(oid) is not None:
        return None
    data = call.hub.read(oid)
    try:
        return None if b"\x00" in data else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- files and versions


def tree_page(call: Call) -> Response:
    """A folder at a revision: its entries with size and last commit, and the revision's refs."""
    repo = _repo(call)
    rev, commit = _revision(repo, call)
    path = call.params["path"].strip("/")
    if path in commit.files:
        return RedirectResponse(_file_url(repo, "blob", rev, path), status_code=302)
    entries = views.tree(call.hub, repo, commit, path, recursive=False, expand=True)
    return html(
        "tree.html.j2",
        **_repo_context(call, repo, "files"),
        rev=rev,
        commit=commit,
        path=path,
        path_parts=_crumbs(path),
        entries=entries,
        refs=_refs(repo),
        commits=len(repo.history(commit)),
    )


def blob_page(call: Call) -> Response:
    """One file: its text with line numbers, or its size and a download link when it is binary or big."""
    repo = _repo(call)
    rev, commit = _revision(repo, call)
    path = call.params["path"].strip("/")
    if path not in commit.files:
        if any(p.startswith(path + "/") for p in commit.files):
            return RedirectResponse(_file_url(repo, "tree", rev, path), status_code=302)
        raise entry_not_found(path)
    text = _text(call, commit, path) if is_text(path) else None
    return html(
        "blob.html.j2",
        **_repo_context(call, repo, "files"),
        rev=rev,
        path=path,
        path_parts=_crumbs(path),
        size=views.file_size(call.hub, commit.files[path]),
        lines=text.splitlines() if text is not None else None,
        last=views.last_commit(repo, commit, path),
    )


def commits_page(call: Call) -> Response:
    """The history of a revision, newest first, each commit with the tags that point at it."""
    repo = _repo(call)
    rev, commit = _revision(repo, call)
    tags: dict[str, list[str]] = {}
    for name, oid in sorted(repo.refs_under(TAGS).items()):
        tags.setdefault(oid, []).append(name)
    return html(
        "commits.html.j2",
        **_repo_context(call, repo, "files"),
        rev=rev,
        history=repo.history(commit),
        tags=tags,
    )


def commit_page(call: Call) -> Response:
    """One commit: message, parents, and its diff against the first parent."""
    repo = _repo(call)
    commit = repo.resolve(call.params["sha"])
    before = repo.commits[commit.parents[0]].files if commit.parents else {}
    return html(
        "commit.html.j2",
        **_repo_context(call, repo, "files"),
        commit=commit,
        changes=merging.changes(before, commit.files),
        diff=merging.unified_diff(before, commit.files, call.hub.read)[:MAX_PREVIEW],
    )


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path up to it) for each folder of `path`."""
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _refs(repo: Repo) -> list[tuple[str, str]]:
    """(label, revision) of every branch, tag and pull request ref."""
    found = [(name, name) for name in sorted(repo.refs_under(HEADS))]
    found += [(f"tag: {name}", name) for name in sorted(repo.refs_under(TAGS))]
    prs = sorted(repo.refs_under(PRS), key=int)
    return found + [(f"{PRS}{num}", f"{PRS}{num}") for num in prs]


def _file_url(repo: Repo, kind: str, rev: str, path: str) -> str:
    return f"{repo_url('', repo)}/{kind}/{quote(rev, safe='')}/{quote(path)}"


# ---------------------------------------------------------------- discussions


def discussions_page(call: Call) -> Response:
    """The Community tab: discussions and pull requests, filtered by `?status=` and `?type=`."""
    repo = _repo(call)
    status, kind = call.query("status") or "all", call.query("type") or "all"
    found = call.hub.community.list(call.user, repo.type, repo.name, kind, status, None)
    found.sort(key=lambda d: not d.pinned)  # pinned first, the rest newest first as listed
    return html(
        "discussions.html.j2",
        **_repo_context(call, repo, "community"),
        discussions=found,
        shown_status=status,
        shown_kind=kind,
    )


def pin_toggle(call: Call) -> Response:
    """The owners' "Pin" button of a thread: pin it to the top of the community tab, or unpin it."""
    repo = _repo(call)
    number = call.params["num"]
    if not number.isdigit():
        raise ApiError(404, f"Discussion not found: {number}")
    thread = f"{repo_url('', repo)}/discussions/{number}"
    if call.user is None:
        return _sign_in_first(thread)
    pinned = call.hub.community.discussion(repo, int(number)).pinned
    call.hub.community.pin(call.user, repo.type, repo.name, int(number), not pinned)
    return RedirectResponse(thread, status_code=303)


def discussion_page(call: Call) -> Response:
    """A thread: comments (with their edits), status and title changes, pushed commits, and for a pull
    request the files it changes, its conflicts and its diff."""
    repo = _repo(call)
    number = call.params["num"]
    if not number.isdigit():
        raise ApiError(404, f"Discussion not found: {number}")
    _, discussion, conflicts, diff = call.hub.community.details(call.user, repo.type, repo.name, int(number))
    changes: dict[str, str | None] = {}
    if discussion.is_pull_request and discussion.base_oid is not None:
        head = repo.commits[repo.refs[discussion.git_ref]]
        changes = merging.changes(repo.commits[discussion.base_oid].files, head.files)
    return html(
        "discussion.html.j2",
        **_repo_context(call, repo, "community"),
        discussion=discussion,
        conflicts=conflicts,
        changes=changes,
        can_pin=call.user is not None and call.hub.can_write(call.user, repo),
        diff=(diff or "")[:MAX_PREVIEW],
    )


# ---------------------------------------------------------------- template helpers


def _ago(stamp: str) -> str:
    """`3 minutes ago` for a Hub timestamp."""
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    seconds = max(int((datetime.now(UTC) - then).total_seconds()), 0)
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def _size(count: int) -> str:
    """Bytes in decimal units, as the Hub shows file sizes (`612 Bytes`, `4.53 kB`, `1.52 GB`)."""
    value, units = float(count), ["Bytes", "kB", "MB", "GB", "TB"]
    while value >= 999.5 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{count} Bytes" if units[0] == "Bytes" else f"{value:.3g} {units[0]}"


_ENV.filters.update(ago=_ago, size=_size, markdown=render, quote_rev=lambda rev: quote(rev, safe=""))
_ENV.globals.update(repo_url=lambda repo: repo_url("", repo), file_url=_file_url)
