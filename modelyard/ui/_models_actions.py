"""A model page's lifecycle actions: change a version's state, approve it, set, roll back or
delete an alias. Each is a form posted under `/ui/models/{name}/…` (CSRF-checked), asks the
role its REST route asks and calls the same `Registry` method, so gates and the audit log see
a click as they see an API call. A refusal shows the model page again with the reason and its
status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import InvalidReference, ModelyardError
from modelyard.security import Role
from modelyard.ui._pages import Pages
from modelyard.ui._viewer import Viewer

Refused = Callable[[Request, Viewer, str, ModelyardError], Awaitable[Response]]
"""Shows the model page again with an action's refusal (`request, viewer, name, error`)."""


def add_routes(router: APIRouter, pages: Pages, *, refused: Refused) -> None:
    """Add the model page's action forms' targets to `router`; `refused` answers a refusal."""
    viewer = Depends(pages.viewer)

    async def acted(
        request: Request, viewer: Viewer, name: str, act: Callable[[], str]
    ) -> Response:
        # `act` returns what it did: back to the model page saying so.
        try:
            message = await pages.call(act)
        except ModelyardError as error:
            return await refused(request, viewer, name, error)
        return pages.done(f"/models/{name}", message)

    @router.post("/ui/models/{name}/transition")
    @pages.page
    async def transition(request: Request, name: str, viewer: Viewer = viewer) -> Response:
        form = await pages.form(request)
        state, comment = form.get("state", ""), form.get("comment", "")

        def act() -> str:
            ref = version_ref(name, form.get("version", ""))
            role = viewer.gatekeeper.transition_role(state)
            viewer.need(role, name).registry.transition(ref, state, comment=comment)
            return f"{ref} moved to {state}"

        return await acted(request, viewer, name, act)

    @router.post("/ui/models/{name}/approve")
    @pages.page
    async def approve(request: Request, name: str, viewer: Viewer = viewer) -> Response:
        form = await pages.form(request)

        def act() -> str:
            ref = version_ref(name, form.get("version", ""))
            viewer.need(Role.APPROVER, name).registry.approve(ref, comment=form.get("comment", ""))
            return f"{ref} approved by {viewer.name}"

        return await acted(request, viewer, name, act)

    @router.post("/ui/models/{name}/alias")
    @pages.page
    async def set_alias(request: Request, name: str, viewer: Viewer = viewer) -> Response:
        form = await pages.form(request)
        alias, reason = form.get("alias", "").strip(), form.get("reason", "")

        def act() -> str:
            ref = version_ref(name, form.get("version", ""))
            registry = viewer.need(viewer.gatekeeper.alias_role(alias), name).registry
            registry.set_alias(name, alias, ref, reason=reason)
            return f"{name}@{alias} now points at {ref}"

        return await acted(request, viewer, name, act)

    @router.post("/ui/models/{name}/rollback")
    @pages.page
    async def rollback(request: Request, name: str, viewer: Viewer = viewer) -> Response:
        form = await pages.form(request)
        alias, reason = form.get("alias", "production"), form.get("reason", "")

        def act() -> str:
            registry = viewer.need(viewer.gatekeeper.alias_role(alias), name).registry
            back = registry.rollback(name, alias, reason=reason)
            return f"{name}@{alias} rolled back to {back.ref}"

        return await acted(request, viewer, name, act)

    @router.post("/ui/models/{name}/alias/delete")
    @pages.page
    async def delete_alias(request: Request, name: str, viewer: Viewer = viewer) -> Response:
        form = await pages.form(request)
        alias = form.get("alias", "")

        def act() -> str:
            registry = viewer.need(viewer.gatekeeper.alias_role(alias), name).registry
            registry.delete_alias(name, alias)
            return f"{name}@{alias} deleted"

        return await acted(request, viewer, name, act)


def version_ref(name: str, text: str) -> str:
    """`name:N` for a version number typed into a form (`3`, or `name:3`)."""
    number = text.strip().removeprefix(f"{name}:")
    if not number.isdigit() or len(number) > 10:
        raise InvalidReference(text, expected=f"a version number of {name}, such as 3")
    return f"{name}:{int(number)}"
