"""Real malicious pickles for the safety tests: each, if loaded, would write a marker file."""

from __future__ import annotations

import builtins
import os
import subprocess
from pathlib import Path
from typing import Any


class SystemCall:
    """Unpickling calls `os.system(command)`."""

    def __init__(self, marker: Path) -> None:
        self.command = f"echo pwned > {marker}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class SubprocessCall:
    """Unpickling calls `subprocess.call(["touch", marker])`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (subprocess.call, (["touch", self.marker],))


class EvalCall:
    """Unpickling calls `builtins.eval` on code that writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').write('pwned')"

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.eval, (self.code,))


class ExecInModel:
    """An innocent-looking object with an `exec` hidden in its state."""

    def __init__(self, marker: Path) -> None:
        self.weights = [1.0, 2.0]
        self.hook = EvalCall(marker)
