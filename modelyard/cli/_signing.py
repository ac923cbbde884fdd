"""`modelyard sign|verify REF`: sign a version's files, and check a version's signature."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, reports_errors


@reports_errors
def sign(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version, e.g. fraud:3 or fraud@staging.")],
    key: Annotated[
        Path | None,
        typer.Option(help="EC private key (PEM); default MODELYARD_SIGNING_KEY."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign a version's files (OpenSSF model-signing format) and keep the signature with it.

    The signature verifies with `model_signing verify key` on the folder that
    `modelyard versions download` writes (it includes `model.sig`).
    """
    from modelyard.security import SIGNATURE_TAG

    version = yard_of(ctx).sign(ref, key=key)
    digest = version.tags[SIGNATURE_TAG]
    if as_json:
        emit_json({"ref": version.ref, "signature": digest})
    else:
        typer.echo(f"signed {version.ref} (signature {digest})")


@reports_errors
def verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Version, e.g. fraud:3 or fraud@production.")],
    key: Annotated[
        list[Path] | None,
        typer.Option(
            help="Trusted EC public key (PEM), repeatable; default MODELYARD_TRUSTED_KEYS."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check that a version's signature was made by a trusted key over exactly its files.

    Exits 1 naming the files that differ, or saying that no trusted key signed it.
    """
    yard = yard_of(ctx)
    verified = yard.verify(ref, keys=key or None)
    ref = yard.get_version(ref).ref
    if as_json:
        emit_json({"ref": ref, "key": str(verified.key), "files": list(verified.files)})
    else:
        typer.echo(f"verified {ref}: {len(verified.files)} files, signed by {verified.key}")
