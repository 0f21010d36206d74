"""SnapStart hooks: registered only where Lambda's runtime provides them, and re-seeding after a restore."""

from __future__ import annotations

import random
import sys
import types

import numpy as np

from handler.snapstart import register_snapstart_hooks, reseed_random


def test_outside_lambda_nothing_is_registered(monkeypatch):
    # Given no snapshot_restore_py (it ships only in Lambda's Python runtimes)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # None: importing it raises ImportError

    # When / Then
    assert register_snapstart_hooks() is False


def test_in_lambda_the_reseed_runs_after_every_restore(monkeypatch):
    # Given the runtime's hook registry
    registered = []
    runtime = types.SimpleNamespace(register_after_restore=registered.append)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)

    # When
    assert register_snapstart_hooks() is True

    # Then
    assert registered == [reseed_random]


def test_reseeding_gives_restored_environments_different_random_numbers():
    # Given two environments restored from one snapshot: the same generator states
    random.seed(7)
    np.random.seed(7)
    snapshot_draws = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)

    # When the after-restore hook runs
    reseed_random()

    # Then neither generator repeats what the snapshot would have drawn
    assert random.random() != snapshot_draws[0]
    assert np.random.random() != snapshot_draws[1]
