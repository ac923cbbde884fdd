"""The models page (`/`: search, aliases and states at a glance) and a model page
(`/models/{name}`: versions sorted by any metric, aliases with their history, gates, and the
lifecycle actions, which are in `_models_actions.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelyard.errors import InvalidFilter, ModelyardError
from modelyard.ui import _models_actions
from modelyard.ui._models_view import (
    FIRST_PAGE,
    PAGE_SIZE,
    Listing,
    VersionsQuery,
    list_models,
    model_page,
    versions_table,
)
from modelyard.ui._pages import Pages, query
from modelyard.ui._viewer import Viewer


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add the models page, the model page and the model page's actions to `router`."""
    viewer = Depends(pages.viewer)

    @router.get("/")
    @pages.page
    async def models(request: Request, viewer: Viewer = viewer) -> Response:
        return await models_response(pages, request, viewer)

    @router.get("/models")
    async def models_again(request: Request) -> Response:
        return RedirectResponse("/" + (f"?{request.url.query}" if request.url.query else ""), 307)

    @router.get("/models/{name}")
    @pages.page
    async def model(request: Request, name: str, viewer: Viewer = viewer) -> Response:
        wanted = VersionsQuery.from_request(request)
        if _table_only(request):
            table = await pages.call(versions_table, viewer, name, wanted)
            return pages.render(request, "_model_versions.html", viewer=viewer,
                                **table, **links(name, wanted))  # fmt: skip
        return await model_response(pages, request, viewer, name, wanted)

    async def refused(
        request: Request, viewer: Viewer, name: str, error: ModelyardError
    ) -> Response:
        return await model_response(pages, request, viewer, name, FIRST_PAGE, refused=error,
                                    status_code=error.status_code)  # fmt: skip

    _models_actions.add_routes(router, pages, refused=refused)


async def models_response(pages: Pages, request: Request, viewer: Viewer) -> Response:
    """The models page; an invalid filter is shown beside the search box (400), the page
    still usable."""
    listing = Listing.from_request(request)
    try:
        found = await pages.call(list_models, viewer, listing)
    except InvalidFilter as error:
        return pages.render(request, "models.html", viewer=viewer, listing=listing, found=None,
                            invalid=error, status_code=400, pages_at=PAGE_SIZE)  # fmt: skip
    return pages.render(request, "models.html", viewer=viewer, listing=listing, found=found,
                        invalid=None, pages_at=PAGE_SIZE)  # fmt: skip


async def model_response(
    pages: Pages,
    request: Request,
    viewer: Viewer,
    name: str,
    wanted: VersionsQuery,
    *,
    refused: Exception | None = None,
    status_code: int = 200,
) -> Response:
    """The whole model page (with `refused`, an action's error, shown at the top)."""
    context = await pages.call(model_page, viewer, name, wanted)
    return pages.render(request, "model.html", viewer=viewer, refused=refused,
                        status_code=status_code, **context, **links(name, wanted))  # fmt: skip


def links(name: str, wanted: VersionsQuery) -> dict[str, Any]:
    """The model page's own URLs: for each sort and page (htmx swaps only the table)."""
    base = f"/models/{name}"

    def at(*, sort: str | None = None, descending: bool | None = None, page: int = 1) -> str:
        sort = sort or wanted.sort
        down = wanted.descending if descending is None else descending
        shown = {"sort": None if sort == "number" else sort, "dir": None if down else "asc"}
        return base + query(**shown, page=None if page == 1 else page)

    def sorted_by(sort: str) -> str:
        """Sorting by `sort`; again by the same column flips the direction."""
        return at(sort=sort, descending=not wanted.descending if sort == wanted.sort else True)

    return {"base": base, "at": at, "sorted_by": sorted_by}


def _table_only(request: Request) -> bool:
    """Whether htmx asked for the versions table alone (not a history restore, which needs
    the whole page)."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-target") == "versions"
        and headers.get("hx-history-restore-request") != "true"
    )
