"""The audit log page, `/audit`: events newest first, filtered by target, actor, action and time,
a page at a time (the log may hold 100,000 events: one indexed query per page), with the hash
chain's verification status at the top.

Verifying recomputes every event's HMAC (about 2.5 s for 20,000 events), so a longer log is
verified after the page shows: htmx asks `/audit/verify` once the page has loaded.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelyard.errors import AuditHeadMissing, ConfigurationError, ModelyardError
from modelyard.registry import AuditEvent, ChainCheck, audit_page
from modelyard.security import Role
from modelyard.ui._pages import Pages
from modelyard.ui._viewer import Viewer

PAGE = 50
"""Events per page by default."""

MAX_PAGE = 500
"""The most events one page shows."""

INLINE_VERIFY = 500
"""Up to this many events, the page verifies the chain before it answers (well under 100 ms)."""

SHORT = 60
"""The most characters of a value a change shows (the whole event is one click away)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One field an event changed: its key ('' for a whole value), before and after."""

    key: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as the page shows it."""

    event: AuditEvent
    href: str | None
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class Filters:
    """The filter form's fields, as typed (they are shown back in the form)."""

    target: str = ""
    actor: str = ""
    action: str = ""
    since: str = ""
    until: str = ""

    def query(self, **more: Any) -> str:
        """This filter's query string, with `more` (`before=…`)."""
        fields = {k: v for k, v in {**asdict(self), **more}.items() if v not in ("", None)}
        return urllib.parse.urlencode(fields)


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add `GET /audit` and `GET /audit/verify` to `router`."""
    viewing = Depends(pages.viewer)  # the signed-in viewer, else a redirect to /login

    @router.get("/audit")
    @pages.page
    def audit(
        request: Request,
        target: str = "",
        actor: str = "",
        action: str = "",
        since: str = "",
        until: str = "",
        before: str = "",
        limit: str = str(PAGE),
        verify: str = "",
        viewer: Viewer = viewing,
    ) -> Response:
        """Audit events newest first, filtered; the chain's verification status on top."""
        filters = Filters(target=target.strip(), actor=actor.strip(), action=action.strip(),
                          since=since.strip(), until=until.strip())  # fmt: skip
        model = re.split(r"[:@]", filters.target, maxsplit=1)[0]
        if filters.target:
            viewer.need(Role.READER, None if model.startswith("@") else model)
        else:
            viewer.need_somewhere(Role.READER)
        total = events_total(viewer)
        context: dict[str, Any] = {
            "filters": filters,
            "everything": viewer.may(Role.READER),
            "paged": bool(before),
            "events_total": total,
            "check": check_chain(viewer) if verify or total <= INLINE_VERIFY else None,
        }
        try:
            rows, older = event_rows(viewer, filters, before=before, limit=limit)
        except ModelyardError as error:
            return pages.render(request, "audit.html", viewer=viewer, problem=error.message,
                                rows=[], older=None, status_code=error.status_code,
                                **context)  # fmt: skip
        return pages.render(request, "audit.html", viewer=viewer, problem="", rows=rows,
                            older=older, **context)  # fmt: skip

    @router.get("/audit/verify")
    @pages.page
    def verify_chain(request: Request, viewer: Viewer = viewing) -> Response:
        """The chain's verification status, for htmx to put into the audit page; a browser
        without scripts that follows the link gets the page verified before it answers."""
        if "hx-request" not in request.headers:
            return RedirectResponse("/audit?verify=1", status_code=303)
        viewer.need_somewhere(Role.READER)
        return pages.render(request, "_audit_verify.html", viewer=viewer,
                            check=check_chain(viewer))  # fmt: skip


def event_rows(
    viewer: Viewer, filters: Filters, *, before: str, limit: str
) -> tuple[list[EventRow], str | None]:
    """A page of events the viewer may read, and the query string of the page after it (None
    at the oldest). One query: a viewer who reads only some models gets the page's events
    about those (so a page may hold fewer than `limit`; the link still leads on)."""
    shown = whole(limit, what="limit", low=1, high=MAX_PAGE)
    found = audit_page(viewer.registry.database, target=filters.target or None,
                       actor=filters.actor or None, action=filters.action or None,
                       since=moment(filters.since, what="from"),
                       until=moment(filters.until, what="until", end=True),
                       before=whole(before, what="before", low=1, high=2**62) if before else None,
                       limit=shown + 1)  # fmt: skip
    older = filters.query(before=found[shown - 1].seq, limit=limit) if len(found) > shown else None
    everything = viewer.may(Role.READER)
    rows = [EventRow(event=event, href=target_href(event), changes=changes(event))
            for event in found[:shown] if everything or readable(viewer, event.target)]  # fmt: skip
    return rows, older


def events_total(viewer: Viewer) -> int:
    """How many events the chain holds (its head's number). With the head row gone, 0: the
    page then verifies at once, and shows the chain broken rather than failing."""
    try:
        return viewer.registry.audit_head().seq
    except AuditHeadMissing:
        return 0


def check_chain(viewer: Viewer) -> ChainCheck | str:
    """The chain's verification, or why this viewer may not see it (it needs the reader role
    on every model, as `GET /api/v1/audit/verify` does)."""
    if not viewer.may(Role.READER):
        return "Verifying the chain needs the reader role on every model."
    return viewer.registry.verify_audit()


def readable(viewer: Viewer, target: str) -> bool:
    """Whether a viewer who reads only some models may see an event about `target`."""
    return not target.startswith("@") and viewer.may(
        Role.READER, re.split(r"[:@]", target, maxsplit=1)[0]
    )


def whole(text: str, *, what: str, low: int, high: int) -> int:
    """`text` as a whole number in `[low, high]`, else a 400 saying so."""
    text = text.strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigurationError(f"{what} must be a whole number from {low} to {high}, "
                                 f"not {text[:40]!r}")  # fmt: skip
    return int(text)


def moment(text: str, *, what: str, end: bool = False) -> datetime | None:
    """A time typed into the form, in UTC (`2026-12-02`, `2026-12-02T21:03[:07]`); with `end`,
    the end of what it names (the whole day, minute or second: an inclusive bound)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{what} must be a time like 2026-12-02 or 2026-12-02T21:03 (UTC), not {text[:40]!r}"
        ) from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not end:
        return value
    if len(text) == 10:
        return value + timedelta(days=1)
    return value + (timedelta(minutes=1) if len(text) == 16 else timedelta(seconds=1))


def target_href(event: AuditEvent) -> str | None:
    """The page of what an event is about: a version (`name:3`), else its model; None for
    tokens, grants, the chain itself and what was deleted."""
    target = event.target
    if (
        target.startswith("@")
        or event.action.startswith("audit.")
        or event.action.endswith(".delete")
    ):
        return None
    name, colon, number = target.partition(":")
    if colon and number.isdigit():
        return "/version?" + urllib.parse.urlencode({"ref": target})
    return "/models/" + urllib.parse.quote(re.split(r"[@:]", target, maxsplit=1)[0], safe="")


def changes(event: AuditEvent) -> list[Change]:
    """What an event changed, compactly: per key when before and after are objects (only the
    keys that differ), else the whole values."""
    before, after = event.before, event.after
    if isinstance(before, dict | None) and isinstance(after, dict | None):
        old, new = before or {}, after or {}
        keys = list(dict.fromkeys([*old, *new]))
        return [Change(key=str(key), before=short(old.get(key)), after=short(new.get(key)))
                for key in keys if old.get(key) != new.get(key)]  # fmt: skip
    return [Change(key="", before=short(before), after=short(after))]


def short(value: Any) -> str:
    """A value as compact JSON, cut to `SHORT` characters; '' for None."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"
