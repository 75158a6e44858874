"""Browse, search, create, edit and delete prompts, artifacts and memories through the core use cases.

One set of handlers serves the three kinds; a ``Kind`` says which use cases, schemas, key fields and form fields.
The signed-in person acts for the whole account (``Viewer.caller``).
Edits carry the version the form was rendered from, so a concurrent change is reported instead of overwritten: the
conflict page keeps the person's unsaved text, shows the stored version beside it (and a diff), and overwriting is a
separate, explicit button; the form keeps the version first read, so pressing Save again overwrites nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.markdown import is_markdown, render_markdown
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.routes.prompt_versions import DiffLine, history_context, unified_diff
from vibexp.api.deps import SessionDep
from vibexp.api.errors import status_for
from vibexp.core.access import Caller
from vibexp.core.content import schemas
from vibexp.core.content.queries import ListQuery, ProjectListQuery
from vibexp.core.content.usecases import ContentCases, Where, artifacts, memories, prompts
from vibexp.core.errors import AlreadyExists, InvalidInput, PreconditionFailed

__all__ = ["KINDS", "FormField", "Kind", "router", "summary_line"]

router = APIRouter(route_class=DashboardRoute)


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    widget: str = "text"  # text | textarea | tags
    help: str = ""
    required: bool = False
    create_only: bool = False  # part of the object's address: set once
    clearable: bool = False  # optional, and emptying it on an edit clears it (sent as null)


@dataclass(frozen=True, slots=True)
class Kind:
    slug: str
    noun: str
    title: str
    cases: ContentCases[Any]
    create_model: type[BaseModel]
    update_model: type[BaseModel]
    key_fields: tuple[str, ...]
    fields: tuple[FormField, ...]
    label_field: str
    #: More for the object's page (prompts: the version history), loaded in the same session.
    page_extras: Callable[..., Coroutine[Any, Any, dict[str, Any]]] | None = None
    #: Exact-match list filters the list page offers besides search and tag (``ProjectListQuery``'s project).
    list_filters: tuple[str, ...] = ()

    def where(self, key: dict[str, str]) -> Where[Any]:
        return Where(tuple((field, key[field]) for field in self.key_fields))

    def query(self, **fields: Any) -> ListQuery:
        """The list page's query; bad input (a search too long) is ``InvalidInput``, shown as the error page."""
        try:
            return (ProjectListQuery if self.list_filters else ListQuery).model_validate(fields)
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise InvalidInput(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}") from None

    def url(self, obj: Any) -> str:
        return f"/{self.slug}/" + "/".join(str(getattr(obj, f)) for f in self.key_fields)

    def label(self, obj: Any) -> str:
        text = str(getattr(obj, self.label_field))
        return text if len(text) <= 90 else text[:89] + "…"


async def _prompt_history(session: AsyncSession, *, caller: Caller, obj: Any) -> dict[str, Any]:
    return await history_context(session, caller=caller, prompt_id=obj.id)


async def _artifact_preview(session: AsyncSession, *, caller: Caller, obj: Any) -> dict[str, Any]:
    """A Markdown artifact rendered (sanitised: ``vibexp.api.dashboard.markdown``) above its form."""
    return {"rendered": render_markdown(obj.content) if is_markdown(obj.content_type) and obj.content else None}


#: How much of an item's text the list shows.
SUMMARY_CHARS = 160


def summary_line(item: Any) -> str:
    """The list's one line about an item: its description, else the first non-blank line of its content."""
    text = str(getattr(item, "description", "") or "").strip()
    if not text:
        content = str(getattr(item, "content", "") or "")
        text = next((line.strip() for line in content.splitlines() if line.strip()), "")
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


TAGS = FormField("tags", "Tags", "tags", help="Comma-separated, e.g. review, python")
KINDS: tuple[Kind, ...] = (
    Kind(
        slug="prompts",
        noun="prompt",
        title="Prompts",
        cases=prompts,
        create_model=schemas.PromptCreate,
        update_model=schemas.PromptUpdate,
        key_fields=("id",),
        fields=(
            FormField("name", "Name", required=True, help="Letters, digits, '_', '.', '-'; also the MCP prompt name"),
            FormField("description", "Description"),
            TAGS,
            FormField("content", "Content", "textarea", required=True, help="{{variable}} marks an argument"),
        ),
        label_field="name",
        page_extras=_prompt_history,
    ),
    Kind(
        slug="artifacts",
        noun="artifact",
        title="Artifacts",
        cases=artifacts,
        create_model=schemas.ArtifactCreate,
        update_model=schemas.ArtifactUpdate,
        key_fields=("project", "slug"),
        fields=(
            FormField("project", "Project", required=True, create_only=True, help="Lowercase letters, digits, . _ -"),
            FormField("slug", "Slug", required=True, create_only=True, help="Lowercase letters, digits, . _ -"),
            FormField("title", "Title", required=True),
            FormField("content_type", "Content type", help="e.g. text/markdown"),
            FormField("description", "Description"),
            TAGS,
            FormField("content", "Content", "textarea"),
        ),
        label_field="title",
        page_extras=_artifact_preview,
        list_filters=("project",),
    ),
    Kind(
        slug="memories",
        noun="memory",
        title="Memories",
        cases=memories,
        create_model=schemas.MemoryCreate,
        update_model=schemas.MemoryUpdate,
        key_fields=("id",),
        fields=(
            FormField("content", "Content", "textarea", required=True),
            TAGS,
            FormField(
                "project",
                "Project",
                help="Optional; lowercase letters, digits, . _ - (as artifact projects)",
                clearable=True,
            ),
        ),
        label_field="content",
        list_filters=("project",),
    ),
)


_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _variables(content: str) -> list[str]:
    """The prompt's ``{{variable}}`` arguments, in order of first use."""
    return list(dict.fromkeys(_VARIABLE.findall(content)))


def _values(kind: Kind, form: Any, *, creating: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in kind.fields:
        if field.create_only and not creating:
            continue
        raw = str(form.get(field.name, ""))
        if field.widget == "tags":
            values[field.name] = [t.strip() for t in raw.split(",") if t.strip()]
        elif field.widget == "textarea":
            values[field.name] = raw.replace("\r\n", "\n")
        elif raw.strip() or field.required:
            values[field.name] = raw.strip()
        elif field.clearable and not creating:
            values[field.name] = None
    return values


def _errors(exc: ValidationError) -> dict[str, str]:
    return {str(e["loc"][0]) if e["loc"] else "form": str(e["msg"]) for e in exc.errors()}


async def _recover(db: SessionDep, viewer: CurrentViewer, *objs: Any) -> None:
    """Roll back a failed write (a lost unique race leaves the session unusable) and reload what the page shows."""
    await db.rollback()
    for obj in (viewer.user, viewer.tenant, *objs):
        await db.refresh(obj)


def _form_page(
    request: Request, kind: Kind, *, obj: Any, values: dict[str, Any], status: int = 200, **extra: Any
) -> Response:
    shown = {k: ", ".join(v) if isinstance(v, list) else v for k, v in values.items()}
    context = {"kind": kind, "obj": obj, "values": shown, "errors": {}, "error": None, "conflict": None}
    context |= {"read_version": None, **extra}
    return render(request, "content/form.html", context, status=status)


#: Longest version number a form may carry (versions are counted up from 1; anything longer is not one we wrote).
_VERSION_DIGITS = 12


def _version(raw: object) -> int | None:
    """The version a form field names: None when absent; a value that is no version number (edited by hand)
    becomes 0, which no object has, so the save is reported as a conflict instead of overwriting blindly."""
    if raw is None or raw == "":
        return None
    text = str(raw)
    if text.isascii() and text.isdigit() and len(text) <= _VERSION_DIGITS:
        return int(text)
    return 0


@dataclass(frozen=True, slots=True)
class Conflict:
    """What the conflict page shows beside the person's unsaved text: the stored version and how it differs."""

    version: int
    updated_at: Any
    #: (field label, stored value, the person's value) for every short field that differs.
    changed: list[tuple[str, str, str]]
    #: The stored text of the long field (content), and a diff from it to the person's text.
    text_label: str
    stored_text: str
    diff: list[DiffLine]


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def _conflict(kind: Kind, stored: Any, mine: dict[str, Any]) -> Conflict:
    changed: list[tuple[str, str, str]] = []
    text_label, stored_text, diff = "", "", []
    for field in kind.fields:
        if field.create_only or field.name not in mine:
            continue
        theirs, yours = _as_text(getattr(stored, field.name)), _as_text(mine[field.name])
        if field.widget == "textarea":
            text_label, stored_text = field.label, theirs
            diff = unified_diff(theirs, yours, old="their version", new="your version") if theirs != yours else []
        elif theirs != yours:
            changed.append((field.label, theirs, yours))
    return Conflict(stored.version, stored.updated_at, changed, text_label, stored_text, diff)


def _register(kind: Kind) -> None:
    # Long on purpose: the list/new/edit/delete pages of one content kind close over that kind (its paths, key
    # fields and forms), so every kind gets the same pages from this one function.
    item_path = f"/{kind.slug}/" + "/".join(f"{{{f}}}" for f in kind.key_fields)
    Handler = Callable[..., Coroutine[Any, Any, Response]]

    def route(path: str, method: str, csrf: bool = False) -> Callable[[Handler], Handler]:
        def add(func: Handler) -> Handler:
            router.add_api_route(
                path,
                func,
                methods=[method],
                dependencies=[CsrfChecked] if csrf else None,
                name=f"{kind.slug}-{method}-{path}",
            )
            return func

        return add

    async def load(request: Request, db: SessionDep, viewer: CurrentViewer) -> Any:
        key = {f: request.path_params[f] for f in kind.key_fields}
        return await kind.cases.get(db, caller=viewer.caller, where=kind.where(key))

    @route(f"/{kind.slug}", "GET")
    async def browse(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
        q = request.query_params.get("q", "").strip() or None
        tag = request.query_params.get("tag", "").strip() or None
        cursor = request.query_params.get("cursor") or None
        filters = {f: v for f in kind.list_filters if (v := request.query_params.get(f, "").strip())}
        query = kind.query(q=q, tag=tag, cursor=cursor, limit=25, **filters)
        page = await kind.cases.list(db, caller=viewer.caller, query=query)
        next_url = None
        if page.next_cursor:
            params = {k: v for k, v in (("q", q), ("tag", tag), *filters.items(), ("cursor", page.next_cursor)) if v}
            next_url = f"/{kind.slug}?{urlencode(params)}"
        context = {"kind": kind, "items": page.items, "q": q or "", "tag": tag or "", "next_url": next_url}
        context["filters"] = filters
        context["summary_line"] = summary_line
        context["production"] = (
            await prompts.production_numbers(db, caller=viewer.caller, prompt_ids=[i.id for i in page.items])
            if kind.slug == "prompts"
            else {}
        )
        context["notice"] = "Deleted." if request.query_params.get("deleted") else None
        return render(request, "content/list.html", context)

    if kind.slug == "prompts":

        @route(item_path + "/view", "GET")
        async def read_view(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
            obj = await load(request, db, viewer)
            history = await history_context(db, caller=viewer.caller, prompt_id=obj.id)
            production = next((n for n, on in history["history_labels"].items() if "production" in on), None)
            context = {"kind": kind, "obj": obj, "production": production, "variables": _variables(obj.content)}
            return render(request, "content/prompt_read.html", context | history)

    @route(f"/{kind.slug}/new", "GET")
    async def new_form(request: Request, viewer: CurrentViewer) -> Response:
        return _form_page(request, kind, obj=None, values={})

    @route(f"/{kind.slug}/new", "POST", csrf=True)
    async def create(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
        values = _values(kind, await request.form(), creating=True)
        try:
            data = kind.create_model.model_validate(values)
            obj = await kind.cases.create(db, caller=viewer.caller, data=data)
        except ValidationError as exc:
            return _form_page(request, kind, obj=None, values=values, status=422, errors=_errors(exc))
        except (AlreadyExists, InvalidInput) as exc:
            await _recover(db, viewer)
            return _form_page(request, kind, obj=None, values=values, status=status_for(exc), error=exc.message)
        return redirect(request, kind.url(obj) + "?saved=1")

    @route(item_path, "GET")
    async def edit_form(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
        obj = await load(request, db, viewer)
        values = {f.name: getattr(obj, f.name) for f in kind.fields}
        notice = "Saved." if request.query_params.get("saved") else None
        extras = await kind.page_extras(db, caller=viewer.caller, obj=obj) if kind.page_extras else {}
        return _form_page(request, kind, obj=obj, values=values, notice=notice, **extras)

    @route(item_path, "POST", csrf=True)
    async def save(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
        obj = await load(request, db, viewer)
        form = await request.form()
        values = _values(kind, form, creating=False)
        shown = {**{f.name: getattr(obj, f.name) for f in kind.fields if f.create_only}, **values}
        # The version the person read stays in the form whatever happens; only the separate "Overwrite" button
        # names a newer one (the version the conflict page showed them), so a plain Save never overwrites it.
        read = _version(form.get("version"))
        overwrite = _version(form.get("overwrite"))
        expected = overwrite if overwrite is not None else read
        try:
            data = kind.update_model.model_validate(values)
            where = kind.where({f: getattr(obj, f) for f in kind.key_fields})
            await kind.cases.update(db, caller=viewer.caller, where=where, data=data, expected_version=expected)
        except ValidationError as exc:
            return _form_page(request, kind, obj=obj, values=shown, status=422, errors=_errors(exc), read_version=read)
        except PreconditionFailed:
            await _recover(db, viewer)
            obj = await load(request, db, viewer)  # the stored version now (NotFound if it was deleted meanwhile)
            conflict = _conflict(kind, obj, values)
            kept = read if read is not None else 0  # a form without a version must not turn into an overwrite
            return _form_page(request, kind, obj=obj, values=shown, status=412, conflict=conflict, read_version=kept)
        except (AlreadyExists, InvalidInput) as exc:
            await _recover(db, viewer, obj)
            return _form_page(
                request, kind, obj=obj, values=shown, status=status_for(exc), error=exc.message, read_version=read
            )
        return redirect(request, kind.url(obj) + "?saved=1")

    @route(item_path + "/delete", "POST", csrf=True)
    async def delete(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
        key = {f: request.path_params[f] for f in kind.key_fields}
        await kind.cases.delete(db, caller=viewer.caller, where=kind.where(key))
        return redirect(request, f"/{kind.slug}?deleted=1")


for _kind in KINDS:
    _register(_kind)
