"""Drift statistics against hand-computed values, binning codes, and verdicts on tiny, empty and shifted samples."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from handler.drift import (ABOVE_CODE, BELOW_CODE, NULL_CODE, PSI_EPSILON, Counts, ProfileError, bin_codes, compare,
                           js_distance, profile_from_json, psi)

PROFILE = {
    "profile_version": 1, "rows": 1000,
    "features": [
        {"name": "age", "kind": "numeric", "edges": [30.0, 50.0], "fractions": [0.25, 0.5, 0.25],
         "minimum": 18.0, "maximum": 90.0, "null_rate": 0.1},
        {"name": "plan", "kind": "categorical", "categories": ["basic", "pro"], "fractions": [0.5, 0.5, 0.0],
         "null_rate": 0.0},
        {"name": "member", "kind": "categorical", "categories": [False, True], "fractions": [0.5, 0.5, 0.0],
         "null_rate": 0.0},
    ],
    "prediction": {"name": "prediction", "kind": "categorical", "categories": ["no", "yes"],
                   "fractions": [0.8, 0.2, 0.0]},
}


@pytest.fixture
def profile():
    return profile_from_json(json.dumps(PROFILE).encode())


def counts_of(profile, rows: list[tuple], predictions: list[str] | None = None) -> Counts:
    counts = Counts()
    columns = dict(zip(profile.feature_names, zip(*rows))) if rows else {name: [] for name in profile.feature_names}
    codes = bin_codes(profile, columns)
    counts.add_rows(profile.feature_names, zip(*codes.values()),
                    None if predictions is None else [profile.prediction.code(value) for value in predictions])
    return counts


def test_psi_matches_the_hand_computed_sum():
    # Given: shares 0.25/0.5/0.25 become 0.5/0.25/0.25
    # When / Then: (0.5-0.25)ln(2) + (0.25-0.5)ln(0.5) + 0 = 0.5 ln 2
    assert psi([0.25, 0.5, 0.25], [0.5, 0.25, 0.25]) == pytest.approx(0.5 * math.log(2))


def test_psi_is_zero_for_equal_shares_and_symmetric():
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0
    assert psi([0.3, 0.7], [0.6, 0.4]) == pytest.approx(psi([0.6, 0.4], [0.3, 0.7]))


def test_an_empty_bin_is_raised_to_epsilon_so_psi_stays_finite():
    # Given: the current sample leaves the first bin empty
    # When
    value = psi([0.5, 0.5], [0.0, 1.0])

    # Then: (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5)
    expected = (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5) + 0.5 * math.log(2)
    assert value == pytest.approx(expected)
    assert math.isfinite(value) and value > 4


def test_js_distance_matches_the_hand_computed_value_and_its_bounds():
    # Given: p = (1, 0), q = (0.5, 0.5), m = (0.75, 0.25)
    # JSD = 0.5 * log2(1/0.75) + 0.5 * (0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25))
    divergence = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    assert js_distance([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.sqrt(divergence))
    assert js_distance([0.3, 0.7], [0.3, 0.7]) == 0.0
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert js_distance([2, 6], [0.25, 0.75]) == 0.0  # counts or shares alike


def test_codes_mark_nulls_range_edges_and_unseen_categories(profile):
    # Given
    columns = {"age": [None, 10, 18, 29.9, 30, 50, 90, 91], "plan": ["basic", "pro", "gold", None, "pro", "basic",
                                                                   "pro", "basic"],
               "member": [True, False, None, True, True, True, False, True]}

    # When
    codes = bin_codes(profile, columns)

    # Then: a value equal to a cut point goes to the bin above; beyond the training range gets its own code
    assert codes["age"] == [NULL_CODE, BELOW_CODE, 0, 0, 1, 2, 2, ABOVE_CODE]
    assert codes["plan"] == [0, 1, 2, NULL_CODE, 1, 0, 1, 0]
    assert codes["member"] == [1, 0, NULL_CODE, 1, 1, 1, 0, 1]


def test_a_boolean_never_takes_a_number_category_code():
    # Given: a category list holding 1 and True
    data = dict(PROFILE, features=[{"name": "x", "kind": "categorical", "categories": [1, True],
                                    "fractions": [0.5, 0.5, 0.0]}])
    profile = profile_from_json(json.dumps(data).encode())

    # When / Then
    assert bin_codes(profile, {"x": [True, 1, 1.0, False]})["x"] == [1, 0, 0, 2]


def test_shares_count_out_of_range_values_in_the_end_bins(profile):
    # Given: 300 rows, a third below the range, a third above, a third in range
    rows = [(10, "basic", True)] * 100 + [(95, "basic", True)] * 100 + [(40, "pro", False)] * 100

    # When
    result = compare(profile, counts_of(profile, rows), min_rows=200)

    # Then
    age = result.features[0]
    assert age.out_of_range_share == pytest.approx(2 / 3)
    assert age.current_fractions == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert age.value == pytest.approx(psi([0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]), abs=1e-6)


def test_unseen_share_and_null_rate_are_reported(profile):
    # Given
    rows = [(None, "gold", True)] * 50 + [(40, "basic", False)] * 150

    # When
    result = compare(profile, counts_of(profile, rows))

    # Then
    age, plan, _ = result.features
    assert (age.null_rate, age.training_null_rate, age.rows) == (0.25, 0.1, 150)
    assert plan.unseen_share == 0.25
    assert plan.statistic == "js" and plan.unseen_share is not None and plan.out_of_range_share is None


def test_a_shift_gives_a_drift_verdict_naming_the_shifted_columns(profile):
    # Given: ages all in the top bin, plans as trained, predictions all "yes"
    rows = [(60, "basic", True), (70, "pro", False)] * 150

    # When
    result = compare(profile, counts_of(profile, rows, ["yes"] * 300))

    # Then
    assert result.verdict == "drift"
    assert result.drifted_features == ["age"]
    assert result.prediction.drifted
    assert result.max_psi == result.features[0].value > 0.25
    assert not result.dataset_drift  # 1 of 3 features


def test_the_training_distribution_gives_no_drift(profile):
    # Given: exactly the training shares
    rows = ([(20, "basic", True)] * 100 + [(40, "pro", False)] * 100 + [(40, "basic", False)] * 100
            + [(60, "pro", True)] * 100)
    predictions = ["no"] * 320 + ["yes"] * 80

    # When
    result = compare(profile, counts_of(profile, rows, predictions))

    # Then
    assert result.verdict == "no_drift" and result.drifted_features == []
    assert result.features[0].value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n_rows", [1, 8, 199])
def test_a_tiny_sample_gets_no_verdict_however_far_it_moved(profile, n_rows):
    # Given: eight rows far outside the training distribution
    rows = [(99, "gold", True)] * n_rows

    # When
    result = compare(profile, counts_of(profile, rows), min_rows=200)

    # Then
    assert result.verdict == "not_enough_data"
    assert result.drifted_features == [] and not result.prediction.drifted
    assert result.features[0].value > 0.25  # the statistic is still shown


def test_an_empty_sample_has_no_statistics(profile):
    # Given / When
    result = compare(profile, counts_of(profile, []))

    # Then
    assert result.verdict == "not_enough_data" and result.rows == 0
    assert all(column.value is None and column.null_rate is None for column in result.features)
    assert result.max_psi == 0.0
    assert json.loads(json.dumps(result.to_dict()))["features"]["age"]["psi"] is None


def test_a_column_with_too_few_values_does_not_drift_even_when_the_batch_is_large(profile):
    # Given: 300 rows, only 20 ages present, all far off
    rows = [(99, "basic", True)] * 20 + [(None, "pro", False)] * 280

    # When
    result = compare(profile, counts_of(profile, rows))

    # Then
    assert not result.features[0].drifted and result.features[0].value > 0.25


def test_the_report_holds_the_documented_keys_per_feature(profile):
    # Given / When
    report = compare(profile, counts_of(profile, [(40, "basic", True)] * 200)).to_dict()

    # Then
    assert set(report["features"]["age"]) >= {"psi", "drifted", "unseen_share", "null_rate", "out_of_range_share",
                                              "rows"}
    assert "js" in report["features"]["plan"]
    assert report["verdict"] == "drift" and report["n_drifted"] == len(report["drifted_features"])


def test_counts_add_up_rows_and_predictions():
    counts = Counts()
    counts.add_rows(["a", "b"], [(0, 1), (0, NULL_CODE)], [1, 1])
    assert counts.rows == 2 and counts.features["a"] == Counter({0: 2}) and counts.prediction == Counter({1: 2})


def test_the_profile_must_match_its_pin_and_shape():
    data = json.dumps(PROFILE).encode()
    with pytest.raises(ProfileError, match="sha256"):
        profile_from_json(data, "0" * 64)
    broken = dict(PROFILE, features=[dict(PROFILE["features"][0], fractions=[1.0])])
    with pytest.raises(ProfileError, match="not a valid profile"):
        profile_from_json(json.dumps(broken).encode())
