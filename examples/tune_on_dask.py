"""Tune a digits classifier on a Dask cluster: each trial a run of the registry, whichever
worker ran it, and the best trial's model registered as `digits-dask`.

    python examples/tune_on_dask.py                         # a LocalCluster of 2 workers here
    python examples/tune_on_dask.py tcp://scheduler:8786    # the cluster of that scheduler
    modelyard tune examples/tune_on_dask.py --scheduler tcp://scheduler:8786

The workers open the registry from this process's settings, so on several machines they all
need its database and store: PostgreSQL and a shared blob store (`MODELYARD_DATABASE_URL`,
`MODELYARD_STORE_URL`), as docs/tune.md shows.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier

_x, _y = load_digits(return_X_y=True)
x_train, y_train = _x[:1400] / 16, _y[:1400]
x_val, y_val = _x[1400:] / 16, _y[1400:]

space = {
    "alpha": ("float", 1e-6, 1e-2, "log"),
    "loss": ["hinge", "log_loss", "modified_huber"],
    "epochs": ("int", 2, 8),
}

defaults = {"name": "digits-dask", "n_trials": 8}


def objective(params: dict[str, Any], trial: Any) -> tuple[float, SGDClassifier]:
    model = SGDClassifier(alpha=params["alpha"], loss=params["loss"], random_state=0)
    for epoch in range(params["epochs"]):
        model.partial_fit(x_train, y_train, classes=np.arange(10))
        trial.report(model.score(x_val, y_val), step=epoch)  # a run metric, for the pruner too
        if trial.should_prune():
            raise optuna.TrialPruned()
    return model.score(x_val, y_val), model


def main() -> None:
    from distributed import Client, LocalCluster

    from modelyard import Yard

    parser = argparse.ArgumentParser(description="Tune a digits classifier on Dask.")
    parser.add_argument("scheduler", nargs="?", help="tcp://host:8786 (default: a LocalCluster)")
    parser.add_argument("--trials", type=int, default=defaults["n_trials"])
    arguments = parser.parse_args()
    options = {**defaults, "n_trials": arguments.trials}
    with Yard() as yard:
        if arguments.scheduler:
            result = yard.tune(objective, space, scheduler=arguments.scheduler, **options)
        else:
            with (
                LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1") as cluster,
                Client(cluster) as client,
            ):
                result = yard.tune(objective, space, scheduler=client, **options)
    for trial in result.trials:
        print(trial.number, trial.state, trial.value, trial.worker, trial.run_id)
    print("registered", result.version.ref if result.version else "nothing")


if __name__ == "__main__":
    main()
