"""`modelyard deploy k8s|registry`: Kubernetes and KServe manifests, written as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._context import yard_of
from modelyard.cli._output import reports_errors

if TYPE_CHECKING:
    from modelyard.deploy import Placement

deploy_app = typer.Typer(help="Kubernetes and KServe manifests for a version or the registry.",
                         no_args_is_help=True)  # fmt: skip

Output = Annotated[
    str,
    typer.Option("--output", "-o", help="A folder (one file per object) or - for a YAML stream."),
]
Namespace = Annotated[
    str | None, typer.Option(help="metadata.namespace of every object (default: kubectl's).")
]
AllowNamespace = Annotated[
    list[str] | None,
    typer.Option(help="Also let pods of this namespace reach the server (repeatable)."),
]
AllowPods = Annotated[
    list[str] | None,
    typer.Option(
        help="LABEL=VALUE: only pods so labelled in the namespace may reach it "
        "(default: every pod of the namespace)."
    ),  # fmt: skip
]


def _placement(namespace: str | None, allow_namespace: list[str] | None,
               allow_pods: list[str] | None, monitoring_namespace: str,
               monitor_label: list[str] | None = None) -> Placement:  # fmt: skip
    from modelyard.deploy import Placement, check_label, parse_labels

    return Placement(
        namespace=check_label(namespace, what="--namespace") if namespace else None,
        allow_namespaces=[
            check_label(ns, what="--allow-namespace") for ns in allow_namespace or []
        ],
        allow_pods=parse_labels(allow_pods or [], what="--allow-pods"),
        monitoring_namespace=check_label(monitoring_namespace, what="--monitoring-namespace")
        if monitoring_namespace else None,
        monitor_labels=parse_labels(monitor_label or [], what="--monitor-label"),
    )  # fmt: skip


def _emit(objects: list[dict[str, Any]], output: str) -> None:
    from modelyard.deploy import render_yaml, write_yaml

    if output == "-":
        typer.echo(render_yaml(objects), nl=False)
        return
    for path in write_yaml(objects, Path(output)):
        typer.echo(f"wrote {path}", err=True)


@deploy_app.command("k8s")
@reports_errors
def k8s(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version: fraud@production, iris:3.")],
    output: Output = "-",
    image: Annotated[
        str | None,
        typer.Option(
            help="Image serving it (default: "
            "modelyard/<name>:<number>, as tagged by modelyard build)."
        ),
    ] = None,  # fmt: skip
    name: Annotated[str | None, typer.Option(help="Objects' name (default: the model's).")] = None,
    replicas: Annotated[int, typer.Option(min=1, help="Replicas, and the HPA's minimum.")] = 2,
    max_replicas: Annotated[int | None, typer.Option(help="HPA maximum (default 3x).")] = None,
    cpu_target: Annotated[int, typer.Option(help="HPA target CPU utilisation, %.")] = 70,
    cpu: Annotated[str, typer.Option(help="CPU request.")] = "500m",
    memory: Annotated[str, typer.Option(help="Memory request (and limit by default).")] = "1Gi",
    cpu_limit: Annotated[str | None, typer.Option(help="CPU limit (default none).")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="Memory limit.")] = None,
    namespace: Namespace = None,
    allow_namespace: AllowNamespace = None,
    allow_pods: AllowPods = None,
    monitoring_namespace: Annotated[
        str, typer.Option(help="Namespace Prometheus scrapes from ('' for none).")
    ] = "monitoring",  # fmt: skip
    monitor_label: Annotated[
        list[str] | None,
        typer.Option(help="LABEL=VALUE on the ServiceMonitor, for the operator's selector."),
    ] = None,  # fmt: skip
    kserve: Annotated[
        bool,
        typer.Option(
            "--kserve",
            help="Write a KServe ServingRuntime and "
            "InferenceService instead of the Deployment set.",
        ),
    ] = False,  # fmt: skip
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="With --kserve: oci://HOST/REPO:TAG "
            "(a modelcar image) or s3://BUCKET/PREFIX (the version's files)."
        ),
    ] = None,  # fmt: skip
    service_account: Annotated[
        str | None,
        typer.Option(help="With --kserve: the ServiceAccount carrying S3 or pull credentials."),
    ] = None,  # fmt: skip
    raw_deployment: Annotated[
        bool,
        typer.Option(
            "--raw-deployment", help="With --kserve: KServe's RawDeployment mode (no Knative)."
        ),
    ] = False,  # fmt: skip
    modelcar: Annotated[
        Path | None,
        typer.Option(
            help="Also write a modelcar build context "
            "(the version's files under /models) into this new folder."
        ),
    ] = None,  # fmt: skip
    modelcar_base: Annotated[
        str | None, typer.Option(help="Modelcar base image (needs sh).")
    ] = None,
) -> None:
    """Write Kubernetes manifests serving a version: Deployment, Service, HPA, PDB,
    NetworkPolicy and ServiceMonitor; or with --kserve a ServingRuntime and InferenceService.

        modelyard deploy k8s fraud@production --replicas 3 -o k8s/fraud
        modelyard deploy k8s fraud:3 --kserve --storage-uri oci://registry.local/fraud-modelcar:3
    """
    from modelyard.deploy import (
        ServingOptions,
        kserve_manifests,
        serving_manifests,
        write_modelcar,
    )
    from modelyard.errors import ConfigurationError

    yard = yard_of(ctx)
    version = yard.get_version(ref)
    options = ServingOptions(
        image=image, name=name, replicas=replicas, max_replicas=max_replicas,
        cpu_target=cpu_target, cpu=cpu, memory=memory, cpu_limit=cpu_limit,
        memory_limit=memory_limit,
        placement=_placement(namespace, allow_namespace, allow_pods, monitoring_namespace,
                             monitor_label),
    )  # fmt: skip
    if kserve and not storage_uri:
        raise ConfigurationError("--kserve needs --storage-uri (oci://… or s3://…)")
    objects = (kserve_manifests(version, options, storage_uri=storage_uri or "",
                                service_account=service_account, raw_deployment=raw_deployment)
               if kserve else serving_manifests(version, options))  # fmt: skip
    if modelcar is not None:

        def restore(folder: Path) -> Path:
            return yard.download(version.ref, folder)

        written = write_modelcar(modelcar, version=version, base=modelcar_base, restore=restore)
        typer.echo(f"wrote {written}", err=True)
    _emit(objects, output)


@deploy_app.command("registry")
@reports_errors
def registry(
    store_url: Annotated[str, typer.Option(help="Blob store: s3://BUCKET/PREFIX.")],
    output: Output = "-",
    image: Annotated[
        str | None,
        typer.Option(
            help="Image with modelyard[server] (default modelyard/modelyard:<this version>)."
        ),
    ] = None,  # fmt: skip
    name: Annotated[str, typer.Option(help="Objects' name.")] = "modelyard-registry",
    replicas: Annotated[int, typer.Option(min=1, help="Server replicas.")] = 2,
    database_secret: Annotated[
        str, typer.Option(help="Secret with key database-url (postgresql+psycopg://…).")
    ] = "modelyard-database",  # fmt: skip
    s3_secret: Annotated[
        str, typer.Option(help="Secret with keys access-key-id and secret-access-key.")
    ] = "modelyard-s3",  # fmt: skip
    server_secret: Annotated[
        str, typer.Option(help="Secret with key secret-key (keys the audit chain).")
    ] = "modelyard-server",  # fmt: skip
    s3_endpoint: Annotated[str | None, typer.Option(help="S3 endpoint URL (MinIO, …).")] = None,
    cpu: Annotated[str, typer.Option(help="CPU request.")] = "250m",
    memory: Annotated[str, typer.Option(help="Memory request and limit.")] = "512Mi",
    namespace: Namespace = None,
    allow_namespace: AllowNamespace = None,
    allow_pods: AllowPods = None,
    monitoring_namespace: Annotated[
        str, typer.Option(help="Namespace Prometheus scrapes /metrics from ('' for none).")
    ] = "monitoring",  # fmt: skip
    monitor_label: Annotated[
        list[str] | None,
        typer.Option(help="LABEL=VALUE on the ServiceMonitor, for the operator's selector."),
    ] = None,  # fmt: skip
) -> None:
    """Write manifests for the registry server on PostgreSQL and S3: a migration Job
    (modelyard db upgrade), Deployment (--auth), Service, PDB, NetworkPolicy and
    ServiceMonitor (/metrics). Secrets are referenced by name, never written.

        modelyard deploy registry --store-url s3://models/yard -o k8s/registry
    """
    from modelyard.deploy import RegistryOptions, registry_manifests

    options = RegistryOptions(
        store_url=store_url, name=name, replicas=replicas, database_secret=database_secret,
        s3_secret=s3_secret, server_secret=server_secret, s3_endpoint=s3_endpoint, cpu=cpu,
        memory=memory,
        placement=_placement(namespace, allow_namespace, allow_pods, monitoring_namespace,
                             monitor_label),
        **({"image": image} if image else {}),
    )  # fmt: skip
    _emit(registry_manifests(options), output)
