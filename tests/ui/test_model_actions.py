"""A model page's lifecycle actions: each works through the registry (gates, audit log), a
refusal shows the page again with the reason, and a post without the form token is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.registry import AuditEvent, Registry
from tests.asgi import in_process_client
from tests.servers import running_server


def token(client: httpx.Client, name: str = "mlp") -> str:
    """The form token of the model page (the client keeps the cookie it goes with)."""
    page = client.get(f"/models/{name}")
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None, page.text[-800:]
    return match[1]


def post(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    name = path.split("/")[3]
    return client.post(path, data={"csrf": token(client, name), **fields}, follow_redirects=False)


@contextmanager
def registry_of(home: Path) -> Iterator[Registry]:
    yard = Yard(Settings(home=home, user="ana"))
    try:
        assert isinstance(yard.registry, Registry)
        yield yard.registry
    finally:
        yard.close()


def audit(home: Path, target: str) -> list[AuditEvent]:
    with registry_of(home) as registry:
        return registry.audit_log(target=target)


def state_of(home: Path, ref: str) -> str:
    with registry_of(home) as registry:
        return registry.get_version(ref).state.value


def aliases_of(home: Path, name: str = "mlp") -> dict[str, int]:
    with registry_of(home) as registry:
        return registry.get_model(name).aliases


def test_a_state_change_moves_the_version_and_is_audited(ui_copy: Path, ui_client: Any) -> None:
    done = post(ui_client, "/ui/models/mlp/transition", version="3", state="validated",
                comment="looks good")  # fmt: skip
    assert done.status_code == 303
    assert done.headers["location"].startswith("/models/mlp?done=")
    shown = ui_client.get(done.headers["location"]).text
    assert "mlp:3 moved to validated" in shown
    assert state_of(ui_copy, "mlp:3") == "validated"
    [event] = [e for e in audit(ui_copy, "mlp:3") if e.action == "version.transition"]
    assert event.actor == "ana" and event.after["state"] == "validated"


def test_a_promotion_the_gate_refuses_shows_why_and_changes_nothing(
    ui_copy: Path, ui_client: Any
) -> None:
    for state in ("validated", "staging"):
        assert post(ui_client, "/ui/models/mlp/transition", version="1", state=state).is_redirect
    refused = post(ui_client, "/ui/models/mlp/transition", version="1", state="production")
    assert refused.status_code == 409
    assert "cannot enter production" in refused.text and "auc" in refused.text
    assert 'class="refused" role="alert"' in refused.text and "<h1>mlp</h1>" in refused.text
    assert state_of(ui_copy, "mlp:1") == "staging"
    assert "production" not in aliases_of(ui_copy)
    assert not [e for e in audit(ui_copy, "mlp@production")]


def test_an_impossible_move_and_a_bad_version_are_refused(ui_client: Any) -> None:
    to = "/ui/models/mlp/transition"
    skipped = post(ui_client, "/ui/models/mlp/transition", version="2", state="production")
    assert skipped.status_code == 409 and "allowed: validated, archived" in skipped.text
    assert post(ui_client, to, version="x", state="staging").status_code == 400
    assert post(ui_client, to, version="99", state="staging").status_code == 404
    unknown = post(ui_client, "/ui/models/mlp/transition", version="2", state="shipped")
    assert unknown.status_code == 400 and "unknown state" in unknown.text


def test_set_roll_back_and_delete_an_alias(ui_copy: Path, ui_client: Any) -> None:
    moved = post(ui_client, "/ui/models/mlp/alias", alias="exp/best", version="2", reason="try")
    assert moved.is_redirect and "now+points+at+mlp%3A2" in moved.headers["location"]
    assert post(ui_client, "/ui/models/mlp/alias", alias="exp/best", version="3").is_redirect
    back = post(ui_client, "/ui/models/mlp/rollback", alias="exp/best", reason="worse")
    assert back.is_redirect and "rolled+back+to+mlp%3A2" in back.headers["location"]
    page = ui_client.get("/models/mlp").text
    assert ">exp/best</span></th>" in page and "worse" in page  # the history's reason
    assert post(ui_client, "/ui/models/mlp/alias/delete", alias="exp/best").is_redirect
    assert "exp/best" not in aliases_of(ui_copy)
    actions = [e.action for e in audit(ui_copy, "mlp@exp/best")]
    assert actions == ["alias.set", "alias.set", "alias.rollback", "alias.delete"]
    missing = post(ui_client, "/ui/models/mlp/rollback", alias="nothing")
    assert missing.status_code == 404 and "<h1>mlp</h1>" in missing.text


def test_approval_by_another_user_counts_and_self_approval_is_refused(ui_copy: Path) -> None:
    from modelyard.api import create_app

    for user, status in (("ana", 403), ("bob", 303)):
        with in_process_client(create_app(Settings(home=ui_copy, user=user))) as client:
            client.base_url = httpx.URL("http://127.0.0.1")
            answer = post(client, "/ui/models/mlp/approve", version="2", comment="ok")
            assert answer.status_code == status, answer.text[-800:]
    [event] = [e for e in audit(ui_copy, "mlp:2") if e.action == "version.approve"]
    assert event.actor == "bob"


def test_a_post_without_the_form_token_is_refused(ui_copy: Path, ui_client: Any) -> None:
    ui_client.get("/models/mlp")  # has the cookie, but sends no token
    for path in ("transition", "approve", "alias", "rollback", "alias/delete"):
        answer = ui_client.post(f"/ui/models/mlp/{path}", data={"version": "3", "alias": "soup",
                                                                 "state": "validated"})  # fmt: skip
        assert answer.status_code == 403, path
    forged = ui_client.post("/ui/models/mlp/alias/delete", data={"alias": "soup", "csrf": "0" * 64})
    assert forged.status_code == 403
    assert "soup" in aliases_of(ui_copy)


@pytest.fixture
def action_url(ui_copy: Path) -> Iterator[str]:
    """A real server over this test's own copy of the registry."""
    with running_server(ui_copy.parent, env={"MODELYARD_USER": "ana"}) as url:
        yield url


def test_an_action_asks_for_confirmation_first(page: Any, action_url: str) -> None:
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss() if len(asked) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.goto(f"{action_url}/models/mlp")
    row = page.locator("tr", has=page.locator("th", has_text="soup"))
    row.get_by_label("Reason").fill("from the browser")
    row.get_by_role("button", name="Delete alias soup").click()  # dismissed: nothing happens
    assert (
        page.url.endswith("/models/mlp") and "soup" in page.locator("#aliases ~ table").inner_text()
    )
    row.get_by_role("button", name="Delete alias soup").click()
    page.wait_for_url("**/models/mlp?done=*")
    assert asked == ["Delete the alias mlp@soup?"] * 2
    assert "mlp@soup deleted" in page.get_by_role("status").inner_text()
    page.console.check()
