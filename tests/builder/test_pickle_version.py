"""Reading which scikit-learn pickled a file, from its bytes alone."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from builder.pickle_version import PickleVersionError, pickled_sklearn_version, read_pickle_facts

KEY = b"\x8c\x10_sklearn_version"  # how protocol 4+ writes the key


@pytest.fixture(scope="module")
def tree() -> DecisionTreeClassifier:
    frame = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 4})
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame, np.arange(30) % 2)


def foreign_version() -> str:
    """A release other than the installed one, as long as its text, so pickle frames keep their lengths."""
    return "1.3." + "2" * (len(sklearn.__version__) - 4)


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz", "lzma"])
def test_joblib_files_name_the_installed_version(tmp_path: Path, tree: DecisionTreeClassifier, compress: object) -> None:
    # Given a DataFrame-fitted tree saved by joblib, its arrays written raw between the pickle's opcodes
    path = tmp_path / "model.joblib"
    joblib.dump(tree, path, compress=compress)

    # When its versions are read
    facts = read_pickle_facts(path)

    # Then the scan steps over the array bytes to the version, and sees numpy 2's module names
    assert facts.sklearn_version == sklearn.__version__
    assert facts.numpy_major == int(np.__version__.split(".")[0])
    assert facts.compression == (None if compress == 0 else "zlib" if compress == 3 else compress)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_plain_pickles_of_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), protocol=protocol))

    assert pickled_sklearn_version(path) == sklearn.__version__


def test_another_version_is_read_as_written(tmp_path: Path, tree: DecisionTreeClassifier) -> None:
    # Given a joblib file whose version string says another release
    path = tmp_path / "model.joblib"
    joblib.dump(tree, path)
    path.write_bytes(path.read_bytes().replace(sklearn.__version__.encode(), foreign_version().encode()))

    assert pickled_sklearn_version(path) == foreign_version()


def test_numpy_1_module_names_are_told_apart(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    data = pickle.dumps({"coef_": np.float64(1.5), "_sklearn_version": "1.3.2"}, protocol=2)
    path.write_bytes(data.replace(b"numpy._core", b"numpy.core"))  # protocol 2 names modules in newline-ended text

    facts = read_pickle_facts(path)

    assert (facts.sklearn_version, facts.numpy_major) == ("1.3.2", 1)


def test_a_pickle_without_scikit_learn_names_no_version(tmp_path: Path) -> None:
    path = tmp_path / "thing.joblib"
    joblib.dump({"weights": np.arange(5.0)}, path)

    assert pickled_sklearn_version(path) is None


def test_reading_executes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a pickle that would create a file and import a module if it were loaded
    witness = tmp_path / "executed"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return subprocess.call, (["touch", str(witness)],)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"run": Payload(), "_sklearn_version": "1.6.1"}, protocol=2)
                     .replace(b"csubprocess\n", b"cnever_imported_module\n"))
    for loader in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, loader, None)  # any unpickling attempt would fail loudly
    monkeypatch.setattr(joblib, "load", None)

    # When its version is read
    version = pickled_sklearn_version(path)

    # Then nothing ran and nothing was imported
    assert version == "1.6.1"
    assert not witness.exists()
    assert "never_imported_module" not in sys.modules


@pytest.mark.parametrize(("content", "cause"), [
    (b"tenure,charges\n1,2\n", "the file is not a pickle (it starts with 74 65 6e"),
    (b"", "the file is empty"),
    (b"ZF0x12", "joblib < 0.9.3"),
])
def test_files_that_are_not_pickles_are_refused(tmp_path: Path, content: bytes, cause: str) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(content)

    with pytest.raises(PickleVersionError, match="^cannot read which scikit-learn version pickled model.pkl: ") as error:
        read_pickle_facts(path)

    assert cause in str(error.value)
    assert "joblib.dump(model, path)" in str(error.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PickleVersionError, match="No such file"):
        read_pickle_facts(tmp_path / "absent.joblib")


@pytest.mark.parametrize("cut_after_key", [-1, 3], ids=["before the key", "inside the version"])
def test_truncated_files_are_refused(tmp_path: Path, tree: DecisionTreeClassifier, cut_after_key: int) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(tree, path)
    data = path.read_bytes()
    path.write_bytes(data[:data.find(KEY) + (len(KEY) + cut_after_key if cut_after_key > 0 else cut_after_key)])

    with pytest.raises(PickleVersionError, match="truncated"):
        read_pickle_facts(path)


def test_truncated_compressed_files_are_refused(tmp_path: Path, tree: DecisionTreeClassifier) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(tree, path, compress="gzip")
    path.write_bytes(path.read_bytes()[:-20])

    with pytest.raises(PickleVersionError, match="its gzip data is truncated or corrupt"):
        read_pickle_facts(path)


def test_compressed_data_that_is_not_a_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(b"hello, world"))

    with pytest.raises(PickleVersionError, match="its gzip-compressed data is not a pickle"):
        read_pickle_facts(path)


def test_lz4_without_the_lz4_package_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 16)
    monkeypatch.setitem(sys.modules, "lz4", None)  # import lz4 raises ImportError

    with pytest.raises(PickleVersionError, match="compressed with lz4, which is not installed; pip install lz4"):
        read_pickle_facts(path)


def test_a_version_entry_without_a_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"_sklearn_version": 3}))

    with pytest.raises(PickleVersionError, match="holds no version string"):
        read_pickle_facts(path)
