from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.cli._app import app
from modelyard.errors import ConfigurationError, InvalidDataFile, OutputExists, UntrustedModel
from tests.scoring.conftest import fit_model, frame


def test_parquet_output_is_model_predict_with_columns_appended(
    yard: Yard, version: str, scheduler: str, tmp_path: Path
) -> None:
    data = frame(3000, seed=1)
    data.to_parquet(tmp_path / "in.parquet", row_group_size=500)
    report = yard.score(version, tmp_path / "in.parquet", tmp_path / "out",
                        scheduler=scheduler, partition_rows=1000, batch_rows=300)  # fmt: skip
    assert report.rows == 3000 and report.workers == 2
    assert [p.name for p in report.parts] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        p.name for p in report.parts
    ]  # no temporary files left
    scored = pd.concat(pd.read_parquet(part) for part in report.parts)
    expected = yard.load_model(version).predict(data[["a", "b"]])
    assert list(scored.columns) == ["id", "a", "b", "output-0"]
    assert scored["id"].tolist() == list(range(3000))
    np.testing.assert_array_equal(scored["output-0"].to_numpy(), expected)
    assert report.drift is not None and not report.drift.drifted


def test_cli_with_a_scheduler_address_on_csv_files(
    yard: Yard, version: str, scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(yard.settings.home))
    (tmp_path / "in").mkdir()
    frame(700, seed=2).to_csv(tmp_path / "in/one.csv", index=False)
    frame(300, seed=3, shift=3.0).to_csv(tmp_path / "in/two.csv", index=False)
    args = ["score", version, "--input", str(tmp_path / "in/*.csv"), "--output",
            str(tmp_path / "out"), "--scheduler", scheduler, "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 1000 and len(report["parts"]) == 2
    drifted = {column["column"]: column["drifted"] for column in report["drift"]["columns"]}
    assert drifted == {"a": True, "b": False}  # a third of the rows moved `a` by 3
    second = pd.read_parquet(tmp_path / "out/part-00001.parquet")
    expected = yard.load_model(version).predict(frame(300, seed=3, shift=3.0)[["a", "b"]])
    np.testing.assert_allclose(second["output-0"].to_numpy(), expected)
    again = CliRunner().invoke(app, args)  # the output holds the parts now
    assert again.exit_code != 0 and "already holds 2 entries" in again.stderr
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_drift_is_reported_on_a_shifted_file(
    yard: Yard, version: str, scheduler: str, tmp_path: Path
) -> None:
    frame(2000, seed=4, shift=1.5).to_parquet(tmp_path / "shifted.parquet", row_group_size=400)
    report = yard.score(version, tmp_path / "shifted.parquet", tmp_path / "out",
                        scheduler=scheduler, partition_rows=800)  # fmt: skip
    assert len(report.parts) == 3  # profiles of three partitions, merged
    assert report.drift is not None and report.output_drift is not None
    drifted = {column.column: column.drifted for column in report.drift.columns}
    assert drifted == {"a": True, "b": False}
    assert report.output_drift.drifted
    assert "a: ks" in report.summary() and "DRIFTED" in report.summary()


def test_a_missing_column_is_named_with_the_file(
    yard: Yard, version: str, scheduler: str, tmp_path: Path
) -> None:
    frame(50).drop(columns="b").to_parquet(tmp_path / "nob.parquet")
    with pytest.raises(InvalidDataFile, match=r"nob\.parquet: missing column 'b'") as caught:
        yard.score(version, tmp_path / "nob.parquet", tmp_path / "out", scheduler=scheduler)
    assert caught.value.status_code == 400
    assert not list((tmp_path / "out").iterdir())  # nothing half-written


def test_stored_code_needs_trust_on_the_workers(yard: Yard, scheduler: str, tmp_path: Path) -> None:
    from tests.flavors.pyfunc_models import Spend

    example = pd.DataFrame({"amount": [1.0, 2.0], "country": ["fr", "usa"]})
    ref = yard.log_model(Spend(), name="spend", input_example=example).ref
    pd.DataFrame({"amount": [3.0, 4.0, 5.0], "country": ["de", "peru", "x"]}).to_csv(
        tmp_path / "in.csv", index=False
    )
    with pytest.raises(UntrustedModel):
        yard.score(ref, tmp_path / "in.csv", tmp_path / "out", scheduler=scheduler)
    report = yard.score(ref, tmp_path / "in.csv", tmp_path / "out2", scheduler=scheduler,
                        trust=True)  # fmt: skip
    assert pd.read_parquet(report.parts[0])["output-0"].tolist() == [6.0, 16.0, 5.0]


def test_workers_open_the_s3_store_from_the_settings_they_are_given(
    s3_settings: Settings, scheduler: str, tmp_path: Path
) -> None:
    settings = Settings.model_validate(
        {
            **s3_settings.model_dump(),
            "home": tmp_path / "home",
            "database_url": "",
            "store_url": f"{s3_settings.store_url}/{tmp_path.name}",
        }  # fmt: skip
    )
    with Yard(settings) as yard:
        model, features = fit_model()
        ref = yard.log_model(model, name="lin", input_example=features.head(3)).ref
        frame(200).to_parquet(tmp_path / "in.parquet")
        report = yard.score(ref, tmp_path / "in.parquet", tmp_path / "out", scheduler=scheduler)
    assert report.rows == 200 and report.drift is None  # logged without reference_data
    np.testing.assert_allclose(
        pd.read_parquet(report.parts[0])["output-0"], model.predict(frame(200)[["a", "b"]])
    )


def test_refusals_before_any_work(yard: Yard, version: str, tmp_path: Path) -> None:
    frame(10).to_parquet(tmp_path / "in.parquet")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/notes.txt").write_text("mine")
    with pytest.raises(OutputExists, match="already holds 1 entries"):
        yard.score(version, tmp_path / "in.parquet", tmp_path / "taken")
    with pytest.raises(OutputExists, match="notes.txt, which is not a part file"):
        yard.score(version, tmp_path / "in.parquet", tmp_path / "taken", overwrite=True)
    with pytest.raises(InvalidDataFile, match="no such file"):
        yard.score(version, tmp_path / "nothing-*.parquet", tmp_path / "out")
    with pytest.raises(ConfigurationError, match="cannot reach the Dask scheduler"):
        yard.score(version, tmp_path / "in.parquet", tmp_path / "out2",
                   scheduler="tcp://127.0.0.1:1")  # fmt: skip
    assert pq.read_metadata(tmp_path / "in.parquet").num_rows == 10


def test_a_remote_yard_scores_on_a_local_cluster_from_its_cache(tmp_path: Path) -> None:
    """Slower than the rest (a LocalCluster of its own, a few seconds)."""
    from modelyard.api import create_app
    from tests.asgi import in_process_client

    server_settings = Settings(home=tmp_path / "server")
    with Yard(server_settings) as embedded:
        model, features = fit_model()
        ref = embedded.log_model(model, name="lin", input_example=features.head(3),
                                 reference_data=features).ref  # fmt: skip
    frame(100).to_parquet(tmp_path / "in.parquet")
    with (
        in_process_client(create_app(server_settings)) as client,
        Yard(
            Settings(home=tmp_path / "client"), url="http://testserver", http_client=client
        ) as remote,  # fmt: skip
    ):
        with pytest.raises(ConfigurationError, match="runs on a LocalCluster only"):
            remote.score(ref, tmp_path / "in.parquet", tmp_path / "out", scheduler="tcp://x:1")
        report = remote.score(ref, tmp_path / "in.parquet", tmp_path / "out", workers=1)
    assert report.workers == 1 and report.rows == 100 and report.drift is not None
    np.testing.assert_allclose(
        pd.read_parquet(report.parts[0])["output-0"], model.predict(frame(100)[["a", "b"]])
    )
