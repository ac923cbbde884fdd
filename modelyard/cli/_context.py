"""What every command needs: the settings built at the root, and a `Yard` over them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._output import emit_json

if TYPE_CHECKING:
    from modelyard._yard import Yard
    from modelyard.settings import Settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings_of(ctx: typer.Context) -> Settings:
    """The `Settings` the root command built."""
    from modelyard.settings import Settings

    settings = ctx.find_root().obj
    if not isinstance(
        settings, Settings
    ):  # pragma: no cover - only if the root callback is skipped
        settings = Settings()
    return settings


def yard_of(ctx: typer.Context) -> Yard:
    """A client over the settings; closed when the command ends."""
    from modelyard._yard import Yard

    yard = Yard(settings_of(ctx), progress=True)  # bars for large models, on a terminal
    ctx.call_on_close(yard.close)
    return yard


def emit_records(records: Any) -> None:
    """Print pydantic records (or a list of them) as JSON."""
    if isinstance(records, list):
        emit_json([record.model_dump(mode="json") for record in records])
    else:
        emit_json(records.model_dump(mode="json"))


def parse_pairs(pairs: list[str] | None, *, what: str) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`, refusing items without `=`."""
    from modelyard.errors import ConfigurationError

    parsed: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"{what} {pair!r} must look like KEY=VALUE")
        parsed[key] = value
    return parsed
