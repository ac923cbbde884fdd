"""NannyML and Evidently as peers of `bench/drift.py`, each in a virtualenv of its own.

Host side (imported by `drift.py`): `find_peers` makes or reuses the virtualenvs (`venvs.py`),
and `compare` runs every peer case on a reference and a current window written to Parquet,
one subprocess per case. Peer side (this file run by a peer's python):

    python bench/drift_peers.py nannyml|evidently REFERENCE.parquet CURRENT.parquet
                                [--methods jensen_shannon|ks_chi2] [--repeat 5]

loads both frames (string columns back to `object`, as the user had them), times fit +
calculate (NannyML) or `Report.run` (Evidently) only, excluding imports and loading, and prints
one JSON object: the runs' seconds, the columns found drifted, the method per column, the
frames' dtypes and the versions. Only the standard library is imported at the top, so the host
side needs neither peer and the peer side needs nothing of modelyard's.

The peer cases, with NannyML cut into ONE chunk (`chunk_number=1`) for reference and window:

- NannyML, `jensen_shannon` for every column (its default method for both kinds). Its default
  threshold (the reference chunks' mean + 3 sd) is 0 with one chunk, so every column would
  alert: the threshold is set to 0.1 (`ConstantThreshold(upper=0.1)`, Evidently's for the same
  distance);
- NannyML, `kolmogorov_smirnov` and `chi2` (the tests modelyard runs by default): chi2 alerts
  on p < 0.05; KS (NannyML's statistic, binned at 10,000 bins for a reference of 10,000 rows or
  more) alerts past the two-sample critical value at alpha 0.05, 1.358 sqrt((n + m) / (n m));
- Evidently, `Report([DataDriftPreset()])` with its defaults (over 1,000 rows: normed Wasserstein
  distance >= 0.1 for numbers, Jensen-Shannon distance >= 0.1 for categories).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NANNYML_VERSION = "0.13.1"
EVIDENTLY_VERSION = "0.7.23"

# pandas < 3: Evidently 0.7.23 imports a helper pandas 3 removed, and NannyML 0.13.1 predates it;
# NannyML 0.13.1 imports statsmodels without declaring it.
REQUIREMENTS = {
    "NannyML": ([f"nannyml=={NANNYML_VERSION}", "statsmodels", "pandas<3", "pyarrow"], "nannyml"),
    "Evidently": ([f"evidently=={EVIDENTLY_VERSION}", "pandas<3", "pyarrow"], "evidently"),
}
"""Each peer's pip requirements and the module its virtualenv must import."""

EVIDENTLY_REPEAT = 3
"""Evidently takes seconds per run: at most this many runs."""

KS_ALPHA_FACTOR = 1.358
"""c(alpha) of the two-sample KS critical value at alpha 0.05."""


@dataclass(frozen=True, slots=True)
class PeerCase:
    """One timed peer configuration: its label in the table and the peer side's arguments."""

    label: str
    short: str
    """The label in the ratio columns' headers."""
    peer: str
    argv: tuple[str, ...]


CASES = (
    PeerCase(
        f"NannyML {NANNYML_VERSION} JS",
        "NannyML JS",
        "NannyML",
        ("nannyml", "--methods", "jensen_shannon"),
    ),
    PeerCase(
        f"NannyML {NANNYML_VERSION} KS+chi2",
        "NannyML KS",
        "NannyML",
        ("nannyml", "--methods", "ks_chi2"),
    ),
    PeerCase(f"Evidently {EVIDENTLY_VERSION} preset", "Evidently", "Evidently", ("evidently",)),
)
"""Every peer case, in the order they run and print."""


@dataclass(slots=True)
class PeerRun:
    """A peer case's outcome: median seconds and the columns it found, or why it has none."""

    label: str
    short: str
    seconds: float | None = None
    runs: list[float] = field(default_factory=list)
    drifted: list[str] | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# ---- host side ------------------------------------------------------------------------------


def find_peers(cache: Path | None = None) -> dict[str, Path | str]:
    """Each peer's python (its virtualenv made if missing), or the reason it cannot be had."""
    from venvs import CACHE, VenvUnavailable, ensure_venv

    found: dict[str, Path | str] = {}
    for peer, (requirements, module) in REQUIREMENTS.items():
        try:
            found[peer] = ensure_venv(
                f"{peer.lower()}-venv", requirements, check=f"import {module}", cache=cache or CACHE
            )
        except VenvUnavailable as error:
            found[peer] = str(error)
    return found


def describe(pythons: dict[str, Path | str]) -> dict[str, Any]:
    """Each peer's versions (itself, pandas, numpy, scipy) and python, or why it is missing."""
    from venvs import VenvUnavailable, run_python

    script = (
        "import importlib.metadata as m, json, sys; print(json.dumps({'python': sys.version"
        ".split()[0], **{n: m.version(n) for n in sys.argv[1:]}}))"
    )
    described: dict[str, Any] = {}
    for peer, python in pythons.items():
        if isinstance(python, str):
            described[peer] = {"unavailable": python}
            continue
        names = [peer.lower(), "pandas", "numpy", "scipy", "pyarrow"]
        try:
            described[peer] = json.loads(run_python(python, ["-c", script, *names], timeout=120))
        except (VenvUnavailable, ValueError) as error:
            described[peer] = {"unavailable": f"cannot read its versions: {error}"}
        else:
            described[peer]["executable"] = str(python)
    return described


def compare(
    pythons: dict[str, Path | str], reference: Path, current: Path, *, repeat: int
) -> list[PeerRun]:
    """Run every peer case on the two Parquet files; a peer that is missing or fails gets a
    `PeerRun` with the reason, never dropped."""
    from venvs import VenvUnavailable, run_python

    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}
    runs = []
    for case in CASES:
        python = pythons.get(case.peer, f"{case.peer} was not looked for")
        if isinstance(python, str):
            runs.append(PeerRun(case.label, case.short, error=python))
            continue
        times = min(repeat, EVIDENTLY_REPEAT) if case.peer == "Evidently" else repeat
        argv = [__file__, *case.argv, str(reference), str(current), "--repeat", str(times)]
        try:
            answer = json.loads(run_python(python, argv, timeout=3600, env=env).splitlines()[-1])
        except (VenvUnavailable, ValueError, IndexError) as error:
            runs.append(PeerRun(case.label, case.short, error=str(error)))
            continue
        runs.append(
            PeerRun(
                case.label,
                case.short,
                seconds=statistics.median(answer["runs"]),
                runs=answer["runs"],
                drifted=answer["drifted"],
                detail={k: v for k, v in answer.items() if k not in ("runs", "drifted")},
            )
        )
    return runs


# ---- peer side ------------------------------------------------------------------------------


def _load(path: str) -> Any:
    """The frame as the user had it: pandas < 3 reads Parquet strings as `object` already; a
    newer pandas's string dtype is turned back into `object` (untimed)."""
    import pandas as pd

    frame = pd.read_parquet(path)
    for name in frame.columns:
        if pd.api.types.is_string_dtype(frame[name]) and frame[name].dtype != object:
            frame[name] = frame[name].astype(object)
    return frame


def _timed(repeat: int, action: Callable[[], Any]) -> tuple[list[float], Any]:
    runs, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        runs.append(time.perf_counter() - began)
    return runs, result


def _counts(methods: Iterable[str]) -> dict[str, int]:
    """How many columns each method tested."""
    return dict(Counter(methods))


def _nannyml(reference: Any, current: Any, methods: str, repeat: int) -> dict[str, Any]:
    import nannyml
    from nannyml.thresholds import ConstantThreshold

    columns = [str(name) for name in reference.columns]
    if methods == "jensen_shannon":
        options: dict[str, Any] = {
            "continuous_methods": ["jensen_shannon"],
            "categorical_methods": ["jensen_shannon"],
            "thresholds": {"jensen_shannon": ConstantThreshold(upper=0.1)},
        }
    else:
        n, m = len(reference), len(current)
        critical = KS_ALPHA_FACTOR * math.sqrt((n + m) / (n * m))
        options = {
            "continuous_methods": ["kolmogorov_smirnov"],
            "categorical_methods": ["chi2"],
            "thresholds": {"kolmogorov_smirnov": ConstantThreshold(upper=critical)},
        }

    def fit_and_calculate() -> Any:
        calculator = nannyml.UnivariateDriftCalculator(
            column_names=columns, chunk_number=1, **options
        )
        calculator.fit(reference)
        return calculator.calculate(current)

    runs, result = _timed(repeat, fit_and_calculate)
    table = result.filter(period="analysis").to_df()
    alerts = [key for key in table.columns if key[0] != "chunk" and key[-1] == "alert"]
    return {
        "runs": runs,
        "drifted": sorted({key[0] for key in alerts if bool(table[key].iloc[0])}),
        "methods": _counts(key[1] for key in alerts),
        "chunks": len(table),
        "version": nannyml.__version__,
    }


def _evidently(reference: Any, current: Any, repeat: int) -> dict[str, Any]:
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def run() -> Any:
        return Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)

    runs, snapshot = _timed(repeat, run)
    drifted, methods = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        column, method, value = config["column"], str(config["method"]), metric["value"]
        methods[column] = f"{method} (threshold {config['threshold']})"
        is_p_value = "p_value" in method
        if (value < config["threshold"]) if is_p_value else (value >= config["threshold"]):
            drifted.append(column)
    return {
        "runs": runs,
        "drifted": sorted(drifted),
        "methods": _counts(methods.values()),
        "version": evidently.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the peer side of bench/drift.py")
    parser.add_argument("tool", choices=["nannyml", "evidently"])
    parser.add_argument("reference")
    parser.add_argument("current")
    parser.add_argument("--methods", choices=["jensen_shannon", "ks_chi2"], default="ks_chi2")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import warnings

    import pandas as pd

    warnings.simplefilter("ignore")  # NannyML warns that one chunk is few; nothing else to say
    reference, current = _load(args.reference), _load(args.current)
    if args.tool == "nannyml":
        answer = _nannyml(reference, current, args.methods, args.repeat)
    else:
        answer = _evidently(reference, current, args.repeat)
    dtypes = reference.dtypes.astype(str).value_counts().to_dict()
    answer.update(dtypes=dtypes, pandas=pd.__version__, python=sys.version.split()[0])
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
