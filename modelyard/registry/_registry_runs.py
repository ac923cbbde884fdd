"""The runs, lineage, diff and audit operations of `Registry`, and its client-side capabilities
(`staging`, `unique_bytes`, `close`), kept apart from the model and version operations."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modelyard.registry import _audit, _numbers, _runs, _versions
from modelyard.registry._audit import ChainCheck
from modelyard.registry._database import Database
from modelyard.registry._diff import VersionDiff, diff_versions
from modelyard.registry._lineage import Lineage, lineage_of
from modelyard.registry._records import AuditEvent, AuditHead, MetricPoint, ModelVersion, Run
from modelyard.registry._references import Reference, check_name
from modelyard.registry._roots import bytes_only_in
from modelyard.registry._run_search import run_search_query
from modelyard.store import BlobStore, Manifest, UniqueBytes


class RunsAndAudit:
    """Runs, lineage, diff and audit over `self.database`, recording `self.actor`."""

    database: Database
    actor: str
    differ: Callable[[str, str], VersionDiff] | None

    if TYPE_CHECKING:

        def get_version(self, ref: str) -> ModelVersion: ...

    # runs -------------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        datasets: Mapping[str, str] | None = None,
        code_revision: str | None = None,
    ) -> Run:
        """Start a run; log to it with `log_params`/`log_metrics`, close it with `end_run`."""
        _numbers.json_numbers([params, tags], what="a run's params and tags")
        with self.database.write() as connection:
            run_id = _runs.create_run(
                connection,
                name=name,
                params=params or {},
                tags=tags or {},
                datasets=datasets or {},
                code_revision=code_revision,
                actor=self.actor,
            )
            return _runs.to_run(connection, _runs.run_row(connection, run_id))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Add params to a run."""
        _numbers.json_numbers(params, what="a run's params")
        with self.database.write() as connection:
            _runs.merge_fields(connection, run_id, "params", params)

    def log_datasets(self, run_id: str, datasets: Mapping[str, str]) -> None:
        """Record the digests of the data a run used, by name."""
        with self.database.write() as connection:
            _runs.merge_fields(connection, run_id, "datasets", datasets)

    def log_artifact(self, run_id: str, name: str, manifest_digest: str) -> None:
        """Record a stored folder (its manifest digest) as an artifact of the run."""
        with self.database.write() as connection:
            _runs.merge_fields(connection, run_id, "artifacts", {name: manifest_digest})

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        """Record metric values at `step` (default: the next step of each metric)."""
        with self.database.write() as connection:
            _runs.log_metrics(connection, run_id, metrics, step=step)

    def end_run(self, run_id: str, status: str = "finished") -> Run:
        """Close a run as finished, failed, killed or pruned."""
        with self.database.write() as connection:
            _runs.finish(connection, run_id, status)
            return _runs.to_run(connection, _runs.run_row(connection, run_id))

    def get_run(self, run_id: str) -> Run:
        """A run with the latest value of each metric."""
        with self.database.read() as connection:
            return _runs.to_run(connection, _runs.run_row(connection, run_id))

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every logged value of one metric of a run, by step."""
        with self.database.read() as connection:
            return _runs.metric_history(connection, run_id, key)

    def search_runs(
        self, filter: str | None = None, *, order_by: str | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs matching a filter (all runs without one), newest first unless `order_by` says.

        >>> registry.search_runs("metrics.loss < 0.3 and params.lr = '0.1'",
        ...                      order_by="metrics.loss", limit=10)
        """
        query = run_search_query(filter, order_by, limit)
        with self.database.read() as connection:
            return _runs.to_runs(connection, connection.execute(query).all())

    # lineage and diff -------------------------------------------------------------------------

    def lineage(self, ref: str, *, depth: int | None = None) -> Lineage:
        """Ancestors and descendants of a version, with the edges between them; `depth`: at
        most that many generations each way (a page showing the nearest ones of a long chain)."""
        with self.database.read() as connection:
            return lineage_of(connection, _versions.resolve(connection, ref), depth=depth)

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: with a `differ` wired (as `Yard` and the server
        do) files, tensors and model structure too; else params, metrics, tags, signature."""
        if self.differ is not None:
            return self.differ(a, b)
        return self.compare(a, b)

    def compare(
        self, a: str, b: str, *, manifests: Callable[[str], Manifest] | None = None
    ) -> VersionDiff:
        """The metadata diff of two versions; files too when `manifests` loads a manifest."""
        first, second = self.get_version(a), self.get_version(b)

        def load(version: ModelVersion) -> Manifest | None:
            if manifests is None or version.manifest_digest is None:
                return None
            return manifests(version.manifest_digest)

        return diff_versions(first, second, load(first), load(second))

    # audit ------------------------------------------------------------------------------------

    def audit_log(self, *, target: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """Audit events, oldest first; `target` narrows to a model (and its versions)."""
        if target is not None:
            check_name(Reference.parse(target).name)
        if limit is not None:
            _numbers.int64(limit, what="limit", low=0)
        with self.database.read() as connection:
            return list(_audit.events(connection, target=target, limit=limit))

    def verify_audit(self, *, head: AuditHead | str | None = None) -> ChainCheck:
        """Walk the audit chain; name the first event that does not match. With `head` (an
        `audit_head()` recorded earlier, or its `SEQ:HASH` text) also check that the chain still
        reaches it unchanged: deleting the last events shows."""
        recorded = AuditHead.parse(head) if isinstance(head, str) else head
        with self.database.read() as connection:
            return _audit.verify(connection, key=self.database.audit_seal.key, head=recorded)

    def audit_head(self) -> AuditHead:
        """Where the audit chain ends now (`seq` and `hash`); keep it outside the database to
        check later with `verify_audit(head=…)`."""
        with self.database.read() as connection:
            return _audit.head(connection)

    # the client's side ------------------------------------------------------------------------

    @contextmanager
    def staging(self, store: BlobStore) -> Iterator[BlobStore]:
        """Where a new version's blobs go: straight into `store`, which this registry shares."""
        yield store

    def unique_bytes(self, store: BlobStore, *, version_ids: set[str]) -> UniqueBytes | None:
        """The blobs and bytes only these versions reference (what deleting them frees)."""
        return bytes_only_in(self.database, store, version_ids=version_ids)

    def close(self) -> None:
        """Release the database's connections."""
        self.database.close()
