"""make bench's batch rows work for the analyst's model: its own rows, drawn from its profile, through both jobs."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestRegressor

from handler.config import Settings
from handler.loading import load_model
from handler.manifest import read_manifest
from tests.models import ARRAY_FEATURES, FEATURES, array_pipeline, fitted_case, frame_pipeline, make_members, packaged
from toolkit.batch_bench import batch_throughput, model_csv
from toolkit.score import score_file


@pytest.fixture(scope="module")
def regressor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DataFrame-fed forest regressor: nullable numbers and strings, a flag, an encoder refusing unknown plans."""
    directory = tmp_path_factory.mktemp("regressor")
    case = fitted_case(directory, make_members(), frame_pipeline(RandomForestRegressor(20, random_state=0)),
                       FEATURES, "spend")
    packaged(case, directory / "model_artifacts")
    return directory / "model_artifacts"


@pytest.fixture(scope="module")
def array_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("array")
    case = fitted_case(directory, make_members(), array_pipeline(), ARRAY_FEATURES, "churned", as_array=True)
    packaged(case, directory / "model_artifacts")
    return directory / "model_artifacts"


def test_generated_rows_follow_the_training_profile_and_all_score(regressor_dir: Path, tmp_path: Path) -> None:
    # Given a model that is not the demo
    manifest = read_manifest(regressor_dir)
    # When its bench file is drawn from its training profile
    source = model_csv(tmp_path / "rows.csv", 5_000, regressor_dir)
    with source.open(encoding="utf-8", newline="") as stream:
        header, *rows = list(csv.reader(stream))
    # Then it has the model's columns, every category is one the model knows, nulls only where allowed
    assert header == manifest.feature_names and len(rows) == 5_000
    columns = dict(zip(header, zip(*rows)))
    assert set(columns["plan"]) <= set(next(f for f in manifest.features if f.name == "plan").categories)
    assert 0.03 < columns["region"].count("") / len(rows) < 0.2  # the sample's ~10% missing regions
    assert "" not in columns["age"] and {"True", "False"} == set(columns["is_member"])
    # And the batch path scores every row: nothing the bench times is a reject
    counts = score_file(load_model(Settings(model_dir=regressor_dir)), source, tmp_path / "scored.csv")
    assert (counts.rows_in, counts.scored, counts.rejected) == (5_000, 5_000, 0)


def test_a_manifest_without_a_profile_repeats_its_example_rows(regressor_dir: Path, tmp_path: Path) -> None:
    model_dir = Path(shutil.copytree(regressor_dir, tmp_path / "model"))
    data = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    del data["profile"], data["profile_sha256"]
    (model_dir / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    with model_csv(tmp_path / "rows.csv", 7, model_dir).open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))[1:]
    names = [feature["name"] for feature in data["features"]]
    example = [["" if instance[name] is None else str(instance[name]) for name in names]
               for instance in data["example"]["instances"]]
    assert rows == list(itertools.islice(itertools.cycle(example), 7))


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["regressor_dir", "array_classifier_dir"])
def test_both_jobs_run_on_a_regressor_and_an_array_fed_model(model_fixture: str,
                                                             request: pytest.FixtureRequest) -> None:
    # When the batch bench runs on a model that is not the demo (a regressor; a pipeline fitted on an array)
    result = batch_throughput(request.getfixturevalue(model_fixture), (2_000,), repeats=1, workers=1)
    # Then both jobs ran to the end (a job that fails raises) and the table shows their ratio
    assert result.batch[2_000].rows_per_second > 0 and result.naive[2_000].rows_per_second > 0
    assert f"{result.ratio(2_000):>8.2f}" in result.table()[1]
