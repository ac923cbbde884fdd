"""Wiring the inference server from `Settings`: the model pool (with its canaries and shadows),
the prediction log and feedback (the registry's `PredictionWriter`), the data plane and the
alert loop, and what starts and stops them in the server's lifespan.

This is the composition root of `modelyard serve`: the parts take what they use through their
constructors (the pool a `ModelSource`, the alert loop an `AlertSource`; a `Yard` is both), and
only this module knows how they fit. The ASGI app in `_inference` is the transport in front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelyard._yard import Yard
from modelyard._yard_events import YardAliasEvents
from modelyard.api._inference import InferenceApp
from modelyard.errors import ConfigurationError
from modelyard.monitoring import (
    AlertHistory,
    AlertLoop,
    FileLogStore,
    PredictionWriter,
    alert_folder,
    load_rules,
)
from modelyard.serving import (
    DataPlane,
    FolderSource,
    Metrics,
    ModelPool,
    ModelSource,
    PredictionLog,
)
from modelyard.settings import Settings

ALERTS_NEED_REGISTRY = (
    "--alerts needs a registry (rules read its versions and may move its aliases); "
    "a --model-dir server has none: evaluate rules on a registry-backed server"
)


def create_inference_app(
    settings: Settings,
    refs: list[str],
    *,
    yard: Yard | None = None,
    trust: bool = False,
    canaries: Mapping[str, float] | None = None,
    shadows: Sequence[str] = (),
    multiprocess: bool = False,
    grpc_address: str | None = None,
    model_dir: str | None = None,
    names: Sequence[str] = (),
) -> InferenceApp:
    """The inference server for `refs` (`fraud@production`, `iris:3`, …), wired from
    `settings`; the models load at startup and are closed at shutdown. `canaries` maps a
    candidate version to its share of traffic (`{"fraud:4": 0.1}`); `shadows` get copies.
    `grpc_address` (`127.0.0.1:8081`): serve the protocol over gRPC there too, from the same
    data plane (bound before the models load, stopped first at shutdown). `model_dir`: serve
    the model folders there (`FolderSource`, only `names` if given) with no registry at all.

    >>> app = create_inference_app(Settings(), ["fraud@production"])  # `serve` runs it
    """
    client: Yard | None = None
    source: ModelSource
    if model_dir is not None:  # no registry: nothing may open the database
        source = FolderSource(Path(model_dir), settings=settings, names=names)
    else:
        source = client = yard or Yard(settings)
    metrics = Metrics(multiprocess=multiprocess)
    pool = _pool(source, settings, metrics, refs, trust=trust, canaries=canaries, shadows=shadows)
    # A registry's log (its database on PostgreSQL, or its server's) is shared by every replica;
    # a --model-dir server keeps files under its home.
    writer = _YardLog(client) if client is not None else _files(settings)
    log = _prediction_log(settings, metrics, writer)

    def store_feedback(model: str, records: list[dict[str, Any]]) -> None:
        writer.write_feedback(model, records)

    plane = DataPlane(pool, metrics, log=log, feedback=store_feedback)
    alerts = _alert_loop(settings, client, plane, served=list(pool.models))
    grpc = None
    if grpc_address is not None:
        from modelyard.api._grpc import GrpcServer  # grpc is imported only when asked for

        grpc = GrpcServer(plane, address=grpc_address, settings=settings, reuse_port=multiprocess)

    async def startup() -> None:
        if grpc is not None:
            await grpc.bind()  # a port in use fails now, before the models load
        try:
            await pool.start(refs)
        except BaseException:
            if grpc is not None:
                await grpc.stop(grace=0)
            raise
        if log is not None:
            log.start()
        if alerts is not None:
            alerts.start()
        if grpc is not None:
            await grpc.start()

    async def shutdown() -> None:
        if grpc is not None:
            await grpc.stop()  # no new calls; those in flight finish on the pool
        if alerts is not None:
            await alerts.stop()
        await pool.stop()
        if log is not None:
            await log.stop()
        if yard is None and client is not None:  # made here, so closed here
            client.close()

    return InferenceApp(
        plane,
        max_body_bytes=settings.serve_max_body_bytes,
        on_startup=startup,
        on_shutdown=shutdown,
        alerts=alerts,
    )


def _pool(
    client: ModelSource,
    settings: Settings,
    metrics: Metrics,
    refs: list[str],
    *,
    trust: bool,
    canaries: Mapping[str, float] | None,
    shadows: Sequence[str],
) -> ModelPool:
    events: YardAliasEvents | None = None  # polling alone: a --model-dir server, or by choice
    if settings.serve_alias_events and isinstance(client, Yard):
        events = YardAliasEvents(client)  # moves heard at once
    pool = ModelPool(client, settings, metrics=metrics, trust=trust, events=events)
    for ref in refs:
        pool.add(ref)  # bad references fail here, before the server starts
    for ref, share in (canaries or {}).items():
        pool.add_canary(ref, share)
    for ref in shadows:
        pool.add_shadow(ref)
    return pool


class _YardLog:
    """The yard's prediction log, looked up at each write (in a worker thread), so building
    the app opens no database."""

    def __init__(self, yard: Yard) -> None:
        self.yard = yard

    def write(self, records: Sequence[dict[str, Any]], *, replica: str | None = None) -> None:
        self.yard.prediction_log().write(records, replica=replica)

    def write_feedback(self, model: str, records: Sequence[dict[str, Any]]) -> None:
        self.yard.prediction_log().write_feedback(model, records)


def _files(settings: Settings) -> PredictionWriter:
    return FileLogStore(settings.home / "predictions", settings.home / "feedback")


def _prediction_log(
    settings: Settings, metrics: Metrics, writer: PredictionWriter
) -> PredictionLog | None:
    if settings.serve_log_sample <= 0:
        return None
    return PredictionLog(
        writer,
        sample=settings.serve_log_sample,
        capacity=settings.serve_log_buffer,
        dropped=metrics.log_dropped.inc,
    )


def _alert_loop(
    settings: Settings, client: Yard | None, plane: DataPlane, *, served: list[str]
) -> AlertLoop | None:
    if settings.serve_alerts is None:
        return None
    if client is None:
        raise ConfigurationError(ALERTS_NEED_REGISTRY)
    # A rule on a model this server does not serve is refused now, in one line.
    rules = load_rules(
        settings.serve_alerts, allowed_webhooks=settings.alert_webhooks, served=served
    )
    history = AlertHistory(alert_folder(settings.home))  # what the web UI's Monitoring shows
    # The lease in the registry: the replicas and workers running these rules evaluate them once.
    return AlertLoop(rules, yard=client, metrics=plane.metrics, traffic=plane.traffic,
                     interval=settings.serve_alert_seconds, history=history, leases=client,
                     lease_seconds=settings.alert_lease_seconds)  # fmt: skip
