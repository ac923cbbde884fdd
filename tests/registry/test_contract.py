"""The contract `RegistryAPI` keeps, run against the embedded registry (SQLite) and the HTTP
client of a real `modelyard server` process; and the signatures that keep them (and `Yard`'s
pass-through methods) from drifting apart."""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard import Settings, Yard
from modelyard._remote import HttpRegistry
from modelyard.errors import (
    ConfigurationError,
    GateFailed,
    InvalidFilter,
    InvalidReference,
    ModelNotFound,
    NotFound,
    RunNotFound,
    SelfApproval,
    VersionInUse,
    VersionNotFound,
)
from modelyard.registry import Registry, RegistryAPI, State
from modelyard.store import BlobStore, digest_bytes, read_bytes
from tests.servers import running_server

Opened = tuple[RegistryAPI, BlobStore]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `modelyard server` (SQLite, open on loopback) for the module; tests use their own
    model names."""
    with running_server(tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture(params=["embedded", "http"])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    """The registry (wired as `Yard` wires it) and the store it registers into."""
    settings = Settings(home=tmp_path / "home", user="ana")
    url = request.getfixturevalue("server_url") if request.param == "http" else None
    yard = Yard(settings, url=url)
    registry = yard.registry
    assert isinstance(registry, HttpRegistry if url else Registry)
    yield registry, yard.store
    yard.close()


@pytest.fixture
def registry(opened: Opened) -> RegistryAPI:
    return opened[0]


@pytest.fixture
def name() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


# models and versions ---------------------------------------------------------------------------


def test_versions_are_numbered_with_their_fields(registry: RegistryAPI, name: str) -> None:
    first = registry.create_version(
        name,
        params={"lr": 0.1},
        metrics={"auc": 0.9},
        tags={"team": "risk"},
        description="first",
        flavor="sklearn",
        signature={"inputs": []},
    )
    second = registry.create_version(name, relation="tune")
    assert (first.ref, second.ref) == (f"{name}:1", f"{name}:2")
    assert first.params == {"lr": "0.1"} and first.metrics == {"auc": 0.9}
    assert first.tags == {"team": "risk"} and first.description == "first"
    assert second.parents == [first.ref]
    assert registry.get_version(name).number == 2
    assert [v.number for v in registry.list_versions(name)] == [2, 1]
    assert registry.get_model(name).latest_version == 2
    assert name in [model.name for model in registry.list_models()]


def test_parents_and_alias_commit(registry: RegistryAPI, name: str) -> None:
    base = registry.create_version(name)
    registry.create_version(name)
    child = registry.create_version(name, parents=[base.ref], alias="exp")
    assert child.parents == [base.ref]
    assert registry.get_version(f"{name}@exp").ref == child.ref
    on_branch = registry.create_version(name, alias="exp")
    assert on_branch.parents == [child.ref]


def test_idempotency_key_registers_once(registry: RegistryAPI, name: str) -> None:
    key = str(uuid.uuid4())
    first = registry.create_version(name, params={"a": 1}, idempotency_key=key)
    again = registry.create_version(name, params={"a": 1}, idempotency_key=key)
    assert again.ref == first.ref
    assert len(registry.list_versions(name)) == 1


def test_missing_things_raise_typed_errors(registry: RegistryAPI, name: str) -> None:
    with pytest.raises(ModelNotFound):
        registry.get_model(name)
    registry.create_version(name)
    with pytest.raises(VersionNotFound):
        registry.get_version(f"{name}:9")
    with pytest.raises(VersionNotFound, match="no alias 'nowhere'"):
        registry.get_version(f"{name}@nowhere")
    with pytest.raises(RunNotFound):
        registry.get_run(uuid.uuid4().hex)


def test_search_pages_through_matches(registry: RegistryAPI, name: str) -> None:
    for auc in (0.7, 0.8, 0.9):
        registry.create_version(name, metrics={"auc": auc}, tags={"m": name})
    where = f"tags.m = '{name}' and metrics.auc >= 0.75"
    page = registry.search_versions(where, order_by="metrics.auc desc", limit=1)
    assert [v.metrics["auc"] for v in page.versions] == [0.9]
    rest = registry.search_versions(
        where, order_by="metrics.auc desc", limit=1, page_token=page.next_page_token
    )
    assert [v.metrics["auc"] for v in rest.versions] == [0.8]


def test_tags(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name)
    assert registry.set_tag(f"{name}:1", "reviewed", True).tags == {"reviewed": "True"}
    assert registry.delete_tag(f"{name}:1", "reviewed").tags == {}


def test_model_description_and_tags(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name, tags={"kept": "on the version"})
    model = registry.update_model(name, description="Card fraud", tags={"team": "risk", "n": 2})
    assert (model.description, model.tags) == ("Card fraud", {"team": "risk", "n": "2"})
    model = registry.update_model(name, tags={"tier": "1"}, delete_tags=["n", "absent"])
    assert (model.description, model.tags) == ("Card fraud", {"team": "risk", "tier": "1"})
    assert registry.update_model(name, description="", delete_tags="team").tags == {"tier": "1"}
    got = registry.get_model(name)
    assert (got.description, got.tags) == ("", {"tier": "1"})
    assert registry.get_version(f"{name}:1").tags == {"kept": "on the version"}
    events = [e for e in registry.audit_log(target=name) if e.action == "model.update"]
    assert [e.after for e in events] == [
        {"description": "Card fraud", "tags.n": "2", "tags.team": "risk"},
        {"tags.n": None, "tags.tier": "1"},
        {"description": "", "tags.team": None},
    ]
    registry.update_model(name, tags={"tier": "1"})  # no change: nothing recorded
    assert len([e for e in registry.audit_log(target=name) if e.action == "model.update"]) == 3


def test_model_updates_refuse_bad_input(registry: RegistryAPI, name: str) -> None:
    with pytest.raises(ModelNotFound) as missing:
        registry.update_model(name, description="x")
    assert missing.value.status_code == 404
    registry.create_version(name)
    with pytest.raises(
        InvalidReference, match=r"of at most 255 characters, no NUL \(this one has 300"
    ):
        registry.update_model(name, tags={"k" * 300: "v"})
    with pytest.raises(ConfigurationError, match="description may not contain NUL"):
        registry.update_model(name, description="a\x00b")
    with pytest.raises(InvalidReference, match="non-empty tag key"):
        registry.update_model(name, delete_tags=[""])
    with pytest.raises(ConfigurationError, match="description may be at most 65536 char"):
        registry.update_model(name, description="x" * 65_537)
    with pytest.raises(ConfigurationError, match="tag 'a' is both set and deleted"):
        registry.update_model(name, tags={"a": "1"}, delete_tags=["a"])
    with pytest.raises(InvalidReference, match="tag key of at most 255"):
        registry.set_tag(f"{name}:1", "k" * 256, "v")
    got = registry.get_model(name)
    assert (got.description, got.tags) == ("", {})


def test_delete_version_and_model(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name)
    registry.create_version(name, alias="live")
    with pytest.raises(VersionInUse):
        registry.delete_version(f"{name}:2")
    registry.delete_version(f"{name}:1")
    assert [v.number for v in registry.list_versions(name)] == [2]
    registry.delete_model(name)
    with pytest.raises(ModelNotFound):
        registry.get_model(name)


# aliases ---------------------------------------------------------------------------------------


def test_aliases_move_roll_back_and_keep_history(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name)
    registry.create_version(name)
    registry.set_alias(name, "production", f"{name}:1", reason="first deploy")
    registry.set_alias(name, "production", f"{name}:2")
    back = registry.rollback(name, "production", reason="drift")
    assert back.ref == f"{name}:1"
    history = registry.alias_history(name, "production")
    assert [(event.version, event.reason) for event in history] == [
        (1, "drift"),
        (2, ""),
        (1, "first deploy"),
    ]
    registry.delete_alias(name, "production")
    assert registry.get_model(name).aliases == {}
    with pytest.raises(NotFound):
        registry.rollback(name, "nothing")


# lifecycle -------------------------------------------------------------------------------------


def test_gates_guard_transitions(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name, metrics={"auc": 0.5})
    gate = registry.add_gate(name, "metric", to_state="validated", metric="auc", op=">=", value=0.9)
    assert [g.id for g in registry.gates(name)] == [gate.id]
    with pytest.raises(GateFailed, match="auc"):
        registry.transition(f"{name}:1", "validated")
    registry.remove_gate(name, gate.id)
    assert registry.gates(name) == []
    assert registry.transition(f"{name}:1", State.VALIDATED, comment="ok").state == "validated"
    registry.transition(f"{name}:1", "staging")
    registry.transition(f"{name}:1", "production", move_alias=False)
    assert registry.get_model(name).aliases == {}
    moves = [(t.from_state, t.to_state) for t in registry.transitions(f"{name}:1")]
    assert moves[0] == ("registered", "validated") and moves[-1][1] == "production"


def test_self_approval_is_refused(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name)
    with pytest.raises(SelfApproval):
        registry.approve(f"{name}:1", comment="looks fine")


# runs ------------------------------------------------------------------------------------------


def test_runs_log_and_end(registry: RegistryAPI, name: str) -> None:
    run = registry.create_run(name=name, params={"lr": 0.1}, tags={"t": 1}, code_revision="abc")
    registry.log_params(run.id, {"epochs": 3})
    registry.log_datasets(run.id, {"train": "sha256:" + "0" * 64})
    registry.log_artifact(run.id, "plots", "sha256:" + "1" * 64)
    registry.log_metrics(run.id, {"loss": 0.5})
    registry.log_metrics(run.id, {"loss": 0.25}, step=5)
    ended = registry.end_run(run.id, "finished")
    assert ended.status == "finished"
    found = registry.get_run(run.id)
    assert found.params == {"lr": "0.1", "epochs": "3"} and found.metrics == {"loss": 0.25}
    assert found.artifacts == {"plots": "sha256:" + "1" * 64} and found.code_revision == "abc"
    history = registry.metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.5), (5, 0.25)]


def test_runs_search(registry: RegistryAPI, name: str) -> None:
    first = registry.create_run(name=name, params={"lr": 0.1}, tags={"sweep": name})
    registry.log_metrics(first.id, {"loss": 0.2})
    second = registry.create_run(name=name, params={"lr": 0.01}, tags={"sweep": name})
    registry.log_metrics(second.id, {"loss": 0.4})
    mine = f"tags.sweep = '{name}'"
    assert [r.id for r in registry.search_runs(mine)] == [second.id, first.id]  # newest first
    found = registry.search_runs(f"{mine} and metrics.loss < 0.3", order_by="metrics.loss")
    assert [(r.id, r.metrics, r.params) for r in found] == [(first.id, {"loss": 0.2}, first.params)]
    best = registry.search_runs(mine, order_by="metrics.loss", limit=1)
    assert [r.id for r in best] == [first.id]
    assert len(registry.search_runs(limit=1)) == 1
    with pytest.raises(InvalidFilter, match="unknown field 'nope'"):
        registry.search_runs("nope = 1")


# lineage and diff ------------------------------------------------------------------------------


def test_lineage_and_diff(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name, params={"lr": 0.1}, metrics={"auc": 0.8})
    registry.create_version(name, params={"lr": 0.2}, metrics={"auc": 0.8}, relation="tune")
    lineage = registry.lineage(f"{name}:2")
    assert [(e.parent, e.child, e.relation) for e in lineage.edges] == [
        (f"{name}:1", f"{name}:2", "tune")
    ]
    diff = registry.diff(f"{name}:1", f"{name}:2")
    assert [(c.key, c.a, c.b) for c in diff.params] == [("lr", "0.1", "0.2")]
    assert diff.metrics == [] and not diff.identical


def test_lineage_to_a_depth(registry: RegistryAPI, name: str) -> None:
    for _ in range(5):
        registry.create_version(name)
    near = registry.lineage(f"{name}:3", depth=1)
    assert (near.ancestors, near.descendants) == ([f"{name}:2"], [f"{name}:4"])
    assert len(registry.lineage(f"{name}:3").ancestors) == 2


# audit -----------------------------------------------------------------------------------------


def test_audit_log_chain_and_head(registry: RegistryAPI, name: str) -> None:
    registry.create_version(name)
    registry.set_alias(name, "live", f"{name}:1")
    actions = [event.action for event in registry.audit_log(target=name)]
    assert {"model.create", "version.create"} <= set(actions)
    assert actions.index("model.create") < actions.index("version.create")  # oldest first
    assert len(registry.audit_log(target=name, limit=1)) == 1
    head = registry.audit_head()
    assert registry.verify_audit().ok
    assert registry.verify_audit(head=head).ok
    assert registry.verify_audit(head=f"{head.seq}:{head.hash}").ok


# leases ----------------------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_released(registry: RegistryAPI, name: str) -> None:
    lease = f"alerts:{name}/x"  # a slash travels in the path
    mine = registry.acquire_lease(lease, holder="a:1", seconds=60)
    assert (mine.name, mine.holder) == (lease, "a:1")
    assert registry.acquire_lease(lease, holder="b:2", seconds=60).holder == "a:1"
    registry.release_lease(lease, holder="a:1")
    assert registry.acquire_lease(lease, holder="b:2", seconds=60).holder == "b:2"
    with pytest.raises(ConfigurationError):
        registry.acquire_lease("no spaces", holder="a:1", seconds=60)


# the client's side -----------------------------------------------------------------------------


def test_staged_blobs_are_stored_with_the_registration(opened: Opened, name: str) -> None:
    registry, store = opened
    data = b"small model file " + name.encode()
    with registry.staging(store) as target:
        digest = target.put(data)
        version = registry.create_version(name, manifest_digest=None, tags={"blob": digest})
    assert version.tags == {"blob": digest} and digest == digest_bytes(data)
    assert read_bytes(store, digest) == data  # the server got it with the registration


def test_unique_bytes_embedded_only(opened: Opened, name: str) -> None:
    registry, store = opened
    version = registry.create_version(name)
    freed = registry.unique_bytes(store, version_ids={version.id})
    if isinstance(registry, HttpRegistry):
        assert freed is None  # the server's roots are its own
    else:
        assert freed is not None and freed.blobs == 0


def test_close_then_reopen(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for url in (None, request.getfixturevalue("server_url")):
        yard = Yard(Settings(home=tmp_path / "home", user="ana"), url=url)
        yard.registry.list_models()
        yard.registry.close()
        yard.close()


# signatures ------------------------------------------------------------------------------------

CONTRACT = sorted(
    member
    for member, value in vars(RegistryAPI).items()
    if callable(value) and not member.startswith("_")
)

YARD_DIFFERS: dict[str, str] = {
    # Yard's user-facing way to do these, named for what a user does:
    "create_version": "log_model stores the files, then registers",
    "create_run": "start_run, a context manager",
    "log_params": "ActiveRun.log_params",
    "log_datasets": "ActiveRun.log_datasets",
    "log_artifact": "ActiveRun.log_artifact (stores the folder too)",
    "log_metrics": "ActiveRun.log_metrics",
    "end_run": "start_run ends the run",
    "staging": "used by log_model",
    "unique_bytes": "delete_version and delete_model return it",
}
YARD_RETURNS: dict[str, str] = {
    "delete_version": "UniqueBytes | None",  # what the deletion lets gc free
    "delete_model": "UniqueBytes | None",
}


def _shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any, Any]]:
    parameters = list(inspect.signature(function).parameters.values())[1:]  # after self
    return [(p.name, p.kind, p.default, p.annotation) for p in parameters]


@pytest.mark.parametrize("implementation", [Registry, HttpRegistry])
def test_implementations_have_the_contract_signatures(implementation: type) -> None:
    for member in CONTRACT:
        mine, contract = getattr(implementation, member), getattr(RegistryAPI, member)
        assert _shape(mine) == _shape(contract), f"{implementation.__name__}.{member}"
        mine_returns = inspect.signature(mine).return_annotation
        contract_returns = inspect.signature(contract).return_annotation
        assert mine_returns == contract_returns or member == "staging", member


def test_yard_passes_every_method_through_with_the_same_signature() -> None:
    for member in CONTRACT:
        if member in YARD_DIFFERS:
            continue
        mine, contract = getattr(Yard, member), getattr(RegistryAPI, member)
        assert _shape(mine) == _shape(contract), f"Yard.{member}"
        returns = inspect.signature(contract).return_annotation
        assert inspect.signature(mine).return_annotation == YARD_RETURNS.get(member, returns)


def test_every_contract_method_is_tested_here() -> None:
    source = Path(__file__).read_text()
    called = set(re.findall(r"registry\.(\w+)\(", source))
    assert sorted(set(CONTRACT) - called) == []
