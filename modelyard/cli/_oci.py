"""`modelyard push REF oci://…` and `modelyard pull oci://…`: versions as OCI artifacts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, human_bytes, reports_errors

Username = Annotated[
    str | None,
    typer.Option(help="User name for the registry; default MODELYARD_OCI_USERNAME."),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password (or token) from standard input; default MODELYARD_OCI_PASSWORD.",
    ),
]


def _password(username: str | None, from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    if username is None:
        from modelyard.errors import ConfigurationError

        raise ConfigurationError("--password-stdin needs --username")
    return sys.stdin.readline().rstrip("\r\n")


@reports_errors
def push(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version, e.g. fraud:3 or fraud@production.")],
    target: Annotated[str, typer.Argument(help="oci://HOST[:PORT]/REPO:TAG")],
    username: Username = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Push a version to an OCI registry: one manifest, each stored blob a layer.

    Blobs the registry has already are skipped, so pushing fine-tuned variants of one model
    sends only what changed. Loopback registries are reached over plain HTTP; others need
    HTTPS unless listed in MODELYARD_OCI_PLAIN_HTTP.
    """
    password = _password(username, password_stdin)
    result = yard_of(ctx).push(ref, target, username=username, password=password)
    if as_json:
        emit_json({
            "reference": result.reference, "digest": result.digest, "layers": result.layers,
            "uploaded": result.uploaded, "uploaded_bytes": result.uploaded_bytes,
            "skipped_bytes": result.skipped_bytes,
        })  # fmt: skip
        return
    typer.echo(f"pushed {ref} to {result.reference}")
    typer.echo(f"digest: {result.digest}")
    typer.echo(
        f"layers: {result.layers}, uploaded {result.uploaded} blobs "
        f"({human_bytes(result.uploaded_bytes)}), skipped {human_bytes(result.skipped_bytes)}"
    )


@reports_errors
def pull(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="oci://HOST[:PORT]/REPO[:TAG|@sha256:…]")],
    register: Annotated[
        str | None, typer.Option(help="Register the artifact as a new version of this model.")
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Point this alias at the new version (with --register).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Restore the files into this folder (absent or empty).")
    ] = None,
    flavor: Annotated[
        str | None, typer.Option(help="Flavor of an artifact without modelyard.json.")
    ] = None,
    username: Username = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Pull an OCI artifact into the store, verifying every digest.

    Works for what `modelyard push` wrote and for files pushed with `oras push`.
    """
    password = _password(username, password_stdin)
    result = yard_of(ctx).pull(
        source, register=register, alias=alias, output=output, flavor=flavor,
        username=username, password=password,
    )  # fmt: skip
    version = result.version.ref if result.version else None
    if as_json:
        emit_json({
            "reference": result.reference, "digest": result.digest,
            "manifest_digest": result.manifest_digest, "version": version,
            "output": str(result.output) if result.output else None,
            "downloaded": result.downloaded, "downloaded_bytes": result.downloaded_bytes,
        })  # fmt: skip
        return
    typer.echo(f"pulled {result.reference}")
    typer.echo(
        f"downloaded {result.downloaded} blobs ({human_bytes(result.downloaded_bytes)}); "
        f"manifest {result.manifest_digest}"
    )
    if version:
        typer.echo(f"registered {version}" + (f" as @{alias}" if alias else ""))
    if result.output:
        typer.echo(f"files in {result.output}")
