"""The HTTP API: the registry server (`create_app(settings)`) and the inference server
(`create_inference_app(settings, refs)`, run by `serve`).

>>> from modelyard.api import serve
>>> serve(Settings(), ["fraud@production"], port=8080)   # blocks; SIGTERM drains
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.api._app import create_app
    from modelyard.api._inference import InferenceApp
    from modelyard.api._inference_server import serve
    from modelyard.api._listening import Listener, check_free, listen
    from modelyard.api._registry_server import serve_registry
    from modelyard.api._running import run, tls_options
    from modelyard.api._serving_wiring import create_inference_app

__all__ = [
    "InferenceApp",
    "Listener",
    "check_free",
    "create_app",
    "create_inference_app",
    "listen",
    "run",
    "serve",
    "serve_registry",
    "tls_options",
]

# Imported on first use: the registry server pulls in FastAPI, which the inference server and
# `modelyard serve` never need.
_HOMES = {
    "_app": ("create_app",),
    "_inference": ("InferenceApp",),
    "_inference_server": ("serve",),
    "_listening": ("Listener", "check_free", "listen"),
    "_registry_server": ("serve_registry",),
    "_running": ("run", "tls_options"),
    "_serving_wiring": ("create_inference_app",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
