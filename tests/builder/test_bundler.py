"""The Docker-free bundler: runtime groups, requirement selection, cache keys, and the real bundles' contents."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import builder.bundler
from builder.bytecode import magic_number, pyc_header_ok
from handler.manifest import manifest_from_dict, read_manifest
from builder.bundler import (
    PANDAS_DISTRIBUTIONS,
    LAMBDA_UNZIPPED_LIMIT,
    SCRIPTS_DIR,
    SLIMMED_SUFFIXES,
    UNUSED_AT_RUN_TIME,
    Bundle,
    BundleError,
    FULL_BYTECODE_RUNTIMES,
    BundleSpec,
    build_bundle,
    cold_start_modules,
    host_target,
    lambda_target,
    missing_wheels,
    model_requirements,
    project_name,
    pyc_path,
    require_wheels,
    runtime_pins,
    select_requirements,
)
from tests.drift_samples import unprofiled_model_dir
from tests.helpers import PROJECT_ROOT, project_with_model
from tests.models import demo

from toolkit.events import predict_event

DEV_PACKAGES = {"aws-cdk-lib", "constructs", "jsii", "cdk-nag", "cfn-lint", "moto", "pytest", "hypothesis",
                "matplotlib", "boto3", "botocore", "s3transfer", "skl2onnx", "onnx"}
ELF_MACHINES = {"arm64": 183, "x86_64": 62}
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
SKLEARN_PINS = runtime_pins(PYPROJECT, "runtime-sklearn")
ONNX_PINS = runtime_pins(PYPROJECT, "runtime-onnx")
# What only scikit-learn models need: an ONNX bundle must not be able to import any of it.
SKLEARN_ONLY_MODULES = ("sklearn", "scipy", "pandas", "joblib")
ONNX_UNUSED_MODULES = ("flatbuffers", "google.protobuf", "packaging", "onnxruntime.tools", "onnxruntime.transformers",
                       "onnxruntime.quantization")
# Per model runtime: what its bundle must not be able to import.
NOT_IN_BUNDLE = {"onnx": SKLEARN_ONLY_MODULES + ONNX_UNUSED_MODULES, "sklearn": ("onnxruntime",)}


def manifest_with(**changes):
    data = json.loads((demo().model_dir / "manifest.json").read_text(encoding="utf-8"))
    return manifest_from_dict({**data, **changes})


def names(pins) -> set[str]:
    return {project_name(pin) for pin in pins}


def bundled_versions(bundle: Path) -> dict[str, str]:
    return {project_name(dist.metadata["Name"]): dist.version
            for dist in importlib.metadata.distributions(path=[str(bundle)])}


def write_pyproject(directory: Path, groups: str) -> Path:
    pyproject = directory / "pyproject.toml"
    pyproject.write_text(f"[dependency-groups]\n{groups}", encoding="utf-8")
    return pyproject


def test_runtime_groups_include_the_common_group_once_then_their_own_pins():
    # Given
    common = runtime_pins(PYPROJECT, "runtime")

    # Then
    assert SKLEARN_PINS[:len(common)] == common and ONNX_PINS[:len(common)] == common
    assert len(names(ONNX_PINS)) == len(ONNX_PINS) and len(names(SKLEARN_PINS)) == len(SKLEARN_PINS)
    assert {"scikit-learn", "scipy", "joblib", "pandas"} <= names(SKLEARN_PINS)
    assert "onnxruntime" not in names(SKLEARN_PINS)
    assert "onnxruntime" in names(ONNX_PINS)
    assert not names(ONNX_PINS) & {"scikit-learn", "scipy", "joblib", "pandas"}


def test_a_runtime_group_must_hold_exact_pins_included_groups_too(tmp_path):
    # Given
    pyproject = write_pyproject(tmp_path, 'base = ["numpy>=2"]\nruntime-onnx = [{ include-group = "base" }]\n')

    # When / Then
    with pytest.raises(BundleError, match=r"runtime-onnx group must hold exact pins .*numpy>=2"):
        runtime_pins(pyproject, "runtime-onnx")


@pytest.mark.parametrize(("groups", "message"), [
    ('a = [{ include-group = "b" }]\nb = [{ include-group = "a" }]\n', r"group a includes itself: a -> b -> a"),
    ('a = [{ include-group = "c" }]\n', r"no dependency group 'c'"),
    ('b = ["numpy==2.4.6"]\na = [{ include-group = "b" }, "numpy==2.3.0"]\n',
     r"pins a project twice: numpy==2.3.0, numpy==2.4.6"),
], ids=["cycle", "missing", "conflict"])
def test_a_broken_group_is_refused_with_the_reason(tmp_path, groups, message):
    # Given
    pyproject = write_pyproject(tmp_path, groups)

    # When / Then
    with pytest.raises(BundleError, match=message):
        runtime_pins(pyproject, "a")


def test_array_sklearn_models_leave_pandas_and_its_helpers_out():
    # Given / When
    selected = names(select_requirements(SKLEARN_PINS, manifest_with(runtime="sklearn", input_format="array")))

    # Then
    assert {"scikit-learn", "numpy", "scipy", "joblib", "aws-lambda-powertools"} <= selected
    assert not selected & PANDAS_DISTRIBUTIONS


def test_dataframe_sklearn_models_get_every_pin_but_dataframe_onnx_models_no_pandas():
    # Given
    dataframe_sklearn = manifest_with(runtime="sklearn", input_format="dataframe")
    dataframe_onnx = manifest_with(runtime="onnx", input_format="dataframe")

    # Then
    assert select_requirements(SKLEARN_PINS, dataframe_sklearn) == SKLEARN_PINS
    assert not names(select_requirements(SKLEARN_PINS, dataframe_onnx)) & PANDAS_DISTRIBUTIONS


def test_nothing_but_pandas_needs_what_array_models_drop():
    # Given: what each kept package requires, from the installed metadata of the same pinned versions
    kept = [pin for pin in SKLEARN_PINS if project_name(pin) not in PANDAS_DISTRIBUTIONS]
    required = {project_name(requirement) for pin in kept
                for requirement in importlib.metadata.requires(project_name(pin)) or []
                if "extra ==" not in requirement}

    # Then
    assert not required & PANDAS_DISTRIBUTIONS


def test_the_pinned_python_dateutil_satisfies_the_botocore_the_lambda_runtime_ships():
    # Given: botocore's own requirement, read from its installed metadata
    [dateutil] = [Requirement(text) for text in importlib.metadata.requires("botocore")
                  if Requirement(text).name == "python-dateutil"]

    # When
    [pin] = [Requirement(pin) for pin in SKLEARN_PINS if project_name(pin) == "python-dateutil"]

    # Then
    assert dateutil.specifier.contains(str(next(iter(pin.specifier)).version))


def test_an_onnx_spec_installs_the_onnx_group_and_ships_only_the_onnx_artifact(tmp_path):
    # Given: the demo model, served by onnxruntime, with the joblib it was exported from beside it
    root = project_with_model(tmp_path, demo().model_dir)

    # When
    spec = BundleSpec.for_project(lambda_target("arm64", "3.14"), root)

    # Then
    assert (spec.runtime, spec.requirements) == ("onnx", tuple(ONNX_PINS))
    assert spec.model_files == ("manifest.json", "model.onnx", "profile.json")


def test_a_sklearn_spec_installs_the_sklearn_group_with_pandas_for_a_dataframe_model(tmp_path, sklearn_demo_dir):
    # Given
    root = project_with_model(tmp_path, sklearn_demo_dir)

    # When
    spec = BundleSpec.for_project(lambda_target("arm64", "3.14"), root)

    # Then
    assert (spec.runtime, spec.requirements) == ("sklearn", tuple(SKLEARN_PINS))
    assert spec.model_files == ("manifest.json", "model.joblib", "profile.json")


def test_a_spec_for_an_s3_model_ships_no_model_files_but_its_runtimes_libraries(tmp_path):
    # Given
    root = project_with_model(tmp_path, demo().model_dir)

    # When
    spec = BundleSpec.for_project(lambda_target("arm64", "3.14"), root, ship_model=False)

    # Then
    assert spec.model_files == ()
    assert spec.requirements == tuple(ONNX_PINS)
    assert all("model_artifacts" not in path.parts for path in spec.source_files())


def test_a_model_packaged_before_profiles_ships_without_one(tmp_path):
    # Given a manifest that pins no profile
    root = project_with_model(tmp_path, unprofiled_model_dir(tmp_path / "unprofiled"))

    # When / Then
    assert BundleSpec.for_project(lambda_target("arm64", "3.14"), root).model_files == ("manifest.json",
                                                                                         "model.onnx")


def test_a_missing_artifact_is_named_before_anything_is_built(tmp_path):
    # Given
    root = project_with_model(tmp_path, demo().model_dir)
    (root / "model_artifacts" / "model.onnx").unlink()

    # When / Then
    with pytest.raises(BundleError, match=r"the manifest names model.onnx, which is not there"):
        BundleSpec.for_project(lambda_target("arm64", "3.14"), root)


# What an export environment of scikit-learn 1.6.1 records in the manifest of a model ONNX cannot serve.
PICKLED_BY_1_6_1 = {"python": "3.11.2", "scikit-learn": "1.6.1", "numpy": "2.2.6", "scipy": "1.15.3",
                    "joblib": "1.5.1", "pandas": "2.2.3"}


def pinned(pins) -> dict[str, str]:
    return {project_name(pin): pin.split("==", 1)[1] for pin in pins}


def test_a_sklearn_model_pickled_by_another_version_gets_that_version_and_its_libraries():
    # Given a DataFrame-fed model served by scikit-learn, pickled by 1.6.1 in an export environment
    manifest = manifest_with(runtime="sklearn", input_format="dataframe", versions=PICKLED_BY_1_6_1)

    # When
    requirements = select_requirements(model_requirements(SKLEARN_PINS, manifest), manifest)

    # Then the model's libraries come at the manifest's versions, everything else at the pins
    versions = pinned(requirements)
    assert {name: versions[name] for name in ("scikit-learn", "numpy", "scipy", "joblib", "pandas")} == {
        name: PICKLED_BY_1_6_1[name] for name in ("scikit-learn", "numpy", "scipy", "joblib", "pandas")}
    assert "scikit-learn==1.6.1" in requirements
    assert {name: version for name, version in versions.items() if name not in PICKLED_BY_1_6_1} == {
        name: version for name, version in pinned(SKLEARN_PINS).items() if name not in PICKLED_BY_1_6_1}


def test_an_array_model_pickled_by_another_version_needs_no_pandas_version():
    # Given
    versions = {name: version for name, version in PICKLED_BY_1_6_1.items() if name != "pandas"}
    manifest = manifest_with(runtime="sklearn", input_format="array", versions=versions)

    # When
    requirements = select_requirements(model_requirements(SKLEARN_PINS, manifest), manifest)

    # Then
    assert "scikit-learn==1.6.1" in requirements and "numpy==2.2.6" in requirements
    assert not names(requirements) & PANDAS_DISTRIBUTIONS


@pytest.mark.parametrize(("runtime", "sklearn_version"), [("sklearn", None), ("onnx", "1.6.1")],
                         ids=["the-pinned-version", "served-by-onnx"])
def test_the_pins_stay_for_the_pinned_version_and_for_models_onnx_serves(runtime, sklearn_version):
    # Given
    versions = {**PICKLED_BY_1_6_1, "scikit-learn": sklearn_version or pinned(SKLEARN_PINS)["scikit-learn"]}
    manifest = manifest_with(runtime=runtime, input_format="dataframe", versions=versions)

    pins = SKLEARN_PINS if runtime == "sklearn" else ONNX_PINS

    # When / Then
    assert model_requirements(pins, manifest) == pins


def test_a_manifest_of_another_version_without_its_scipy_version_is_refused():
    # Given a manifest written before scikit-learn models recorded scipy
    versions = {name: version for name, version in PICKLED_BY_1_6_1.items() if name != "scipy"}
    manifest = manifest_with(runtime="sklearn", input_format="dataframe", versions=versions)

    # When / Then
    with pytest.raises(BundleError, match=r"pickled by scikit-learn 1.6.1 and its manifest records no scipy version"):
        model_requirements(SKLEARN_PINS, manifest)


def test_a_spec_for_a_model_of_another_version_says_so_and_installs_it(tmp_path, sklearn_demo_dir):
    # Given the demo served by scikit-learn, its manifest naming 1.6.1 as the pickling version
    root = project_with_model(tmp_path / "foreign", sklearn_demo_dir)
    manifest_file = root / "model_artifacts" / "manifest.json"
    data = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest_file.write_text(json.dumps({**data, "versions": PICKLED_BY_1_6_1}), encoding="utf-8")
    native = BundleSpec.for_project(lambda_target("arm64", "3.12"), project_with_model(tmp_path / "native",
                                                                                      sklearn_demo_dir))

    # When
    spec = BundleSpec.for_project(lambda_target("arm64", "3.12"), root)

    # Then
    assert (spec.sklearn_version, native.sklearn_version) == ("1.6.1", None)
    assert "scikit-learn==1.6.1" in spec.requirements and "scikit-learn==1.6.1" not in native.requirements


def test_no_wheels_for_the_target_is_one_line_naming_the_version_the_cause_and_the_options(tmp_path, monkeypatch,
                                                                                          sklearn_demo_dir):
    # Given pip finds the 1.6.1 wheels for python3.12 and python3.13 only
    def fake_missing(requirements, target):
        return None if target.python_version in ("3.12", "3.13") else \
            "No matching distribution found for scikit-learn==1.6.1"

    monkeypatch.setattr(builder.bundler, "missing_wheels", fake_missing)
    spec = BundleSpec(lambda_target("arm64", "3.14"), "sklearn", ("scikit-learn==1.6.1",), (), PROJECT_ROOT,
                      sklearn_version="1.6.1")

    # When
    with pytest.raises(BundleError) as refused:
        require_wheels(spec)

    # Then
    message = str(refused.value)
    assert "\n" not in message
    for part in ("scikit-learn 1.6.1", "python3.14 on arm64", "No matching distribution found for scikit-learn==1.6.1",
                 f"retrain and save the model in .venv (scikit-learn {pinned(SKLEARN_PINS)['scikit-learn']})",
                 "python_runtime", "python3.12, python3.13"):
        assert part in message


@pytest.mark.slow
def test_pip_finds_wheels_of_an_older_scikit_learn_for_one_lambda_python_and_not_for_another():
    # Given the libraries a 1.6.1 model pickled with; skipped when the package index cannot be reached
    if missing_wheels(SKLEARN_PINS, host_target()) is not None:
        pytest.skip("the package index is not reachable")
    requirements = [f"{name}=={version}" for name, version in PICKLED_BY_1_6_1.items() if name != "python"]

    # When
    found = {python: missing_wheels(requirements, lambda_target("arm64", python)) for python in ("3.12", "3.14")}

    # Then scikit-learn 1.6.1 (and numpy 2.2) came before CPython 3.14: no wheels for it
    assert found["3.12"] is None
    assert "No matching distribution found for" in found["3.14"]


def test_lambda_wheels_come_for_amazon_linux_2023_and_the_chosen_python():
    # Given / When
    arguments = lambda_target("arm64", "3.14").pip_args

    # Then
    platforms = [arguments[index + 1] for index, arg in enumerate(arguments) if arg == "--platform"]
    assert "manylinux_2_34_aarch64" in platforms and "manylinux_2_17_aarch64" in platforms
    assert "manylinux_2_35_aarch64" not in platforms  # newer than AL2023's glibc
    assert "manylinux2014_aarch64" in platforms
    assert ("--python-version", "3.14") == tuple(arguments[arguments.index("--python-version"):][:2])
    assert "--only-binary=:all:" in arguments


def test_bundle_key_follows_the_code_and_shipped_model_and_dependency_key_only_the_requirements(tmp_path):
    # Given
    root = project_with_model(tmp_path, demo().model_dir)
    target = lambda_target("arm64", "3.14")

    def keys(**options) -> tuple[str, str]:
        spec = BundleSpec.for_project(target, root, **options)
        return spec.key, spec.dependencies_key

    before = keys()

    # When
    (root / "handler" / "app.py").write_text("# changed\n", encoding="utf-8")
    after_code_change = keys()
    (root / "model_artifacts" / "model.joblib").write_bytes(b"not shipped with an ONNX model")
    after_unshipped_change = keys()
    before_onnx_change = keys(ship_model=False)
    (root / "model_artifacts" / "model.onnx").write_bytes(b"another graph")
    after_onnx_change, after_onnx_change_unshipped = keys(), keys(ship_model=False)
    manifest = root / "model_artifacts" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**data, "runtime": "sklearn", "artifact": "model.joblib"}), encoding="utf-8")
    after_runtime_change = keys()

    # Then
    assert after_code_change[0] != before[0] and after_code_change[1] == before[1]
    assert after_unshipped_change == after_code_change
    assert after_onnx_change[0] != after_unshipped_change[0]
    assert after_onnx_change_unshipped == before_onnx_change  # an S3 model is not part of the code asset
    assert after_runtime_change[1] != before[1]


def test_a_project_without_a_packaged_model_says_what_to_do(tmp_path):
    with pytest.raises(BundleError, match=r"manifest.json not found \(package a model first: make model\)"):
        BundleSpec.for_project(lambda_target("arm64", "3.14"), tmp_path)


@pytest.mark.slow
def test_lambda_bundle_fits_lambdas_unzipped_limit(lambda_bundle: Bundle):
    # Then (the room it must leave is a size budget: tests/budgets)
    assert lambda_bundle.unzipped_bytes < LAMBDA_UNZIPPED_LIMIT, lambda_bundle.summary()
    measured = sum(path.stat().st_size for path in lambda_bundle.path.rglob("*") if path.is_file())
    assert measured == lambda_bundle.unzipped_bytes
    assert 0 < lambda_bundle.zipped_bytes < lambda_bundle.unzipped_bytes


@pytest.mark.slow
def test_lambda_bundle_holds_the_handler_the_model_files_and_only_its_runtimes_pins(lambda_bundle: Bundle):
    # Given
    manifest = json.loads((lambda_bundle.path / "model_artifacts" / "manifest.json").read_text(encoding="utf-8"))
    versions = bundled_versions(lambda_bundle.path)
    pins = runtime_pins(PYPROJECT, f"runtime-{manifest['runtime']}")
    unused = UNUSED_AT_RUN_TIME.get(manifest["runtime"])

    # Then
    assert (lambda_bundle.path / "handler" / "app.py").is_file()
    assert sorted(path.name for path in (lambda_bundle.path / "model_artifacts").iterdir()) == sorted(
        ["manifest.json", manifest["artifact"], manifest["profile"]])
    assert not set(versions) & DEV_PACKAGES
    assert not {"aws_cdk", "boto3", "botocore", "moto", "pytest", "cdk_nag", "hypothesis", "matplotlib",
                "toolkit", "infra", "tests"} & {entry.name for entry in lambda_bundle.path.iterdir()}
    pinned = {project_name(pin): str(next(iter(Requirement(pin).specifier)).version) for pin in pins}
    assert {name: version for name, version in versions.items() if pinned.get(name) != version} == {}
    if unused:
        assert not set(versions) & set(unused.distributions)
        assert not [directory for directory in unused.directories if (lambda_bundle.path / directory).exists()]
        assert not [path for pattern in unused.files for path in lambda_bundle.path.glob(pattern)]


@pytest.mark.slow
def test_a_sklearn_bundles_python_dateutil_satisfies_botocore(sklearn_host_bundle: Bundle):
    # Given: the Lambda runtime's botocore sits after the bundle on sys.path and imports our dateutil
    [dateutil] = [Requirement(text) for text in importlib.metadata.requires("botocore")
                  if Requirement(text).name == "python-dateutil"]

    # When
    versions = bundled_versions(sklearn_host_bundle.path)
    manifest = read_manifest(sklearn_host_bundle.path / "model_artifacts")

    # Then: a DataFrame model bundles dateutil (with pandas), which must be one botocore accepts; an array model none
    assert ("python-dateutil" in versions) == (manifest.input_format == "dataframe")
    assert "python-dateutil" not in versions or dateutil.specifier.contains(versions["python-dateutil"])


@pytest.mark.slow
def test_lambda_bundle_is_slimmed_and_built_for_the_target_architecture(lambda_bundle: Bundle, default_config):
    # Given
    files = [path for path in lambda_bundle.path.rglob("*") if path.is_file()]
    shared_objects = [path for path in files if ".so" in path.suffixes]

    target_tag = f".cpython-{default_config.python_version.replace('.', '')}.pyc"

    # Then no tests and no stray bytecode: the only pycs are the target runtime's, in __pycache__
    assert not [path for path in lambda_bundle.path.rglob("*") if path.is_dir() and path.name == "tests"]
    assert not (lambda_bundle.path / SCRIPTS_DIR).exists()  # their shebangs would make the bytes machine-specific
    assert not [path for path in files if path.suffix in SLIMMED_SUFFIXES - {".pyc"}]
    assert all(path.name.endswith(target_tag) and path.parent.name == "__pycache__"
               for path in files if path.suffix == ".pyc")
    machines = {int.from_bytes(path.read_bytes()[18:20], "little") for path in shared_objects}
    assert machines == {ELF_MACHINES[default_config.architecture]}
    assert all(path.stat().st_mode & 0o444 == 0o444 for path in files)  # Lambda reads as another user


@pytest.mark.slow
def test_a_second_build_with_nothing_changed_is_a_cache_hit(lambda_bundle: Bundle, default_config):
    # Given
    spec = BundleSpec.for_project(lambda_target(default_config.architecture, default_config.python_version))

    # When
    started = time.monotonic()
    again = build_bundle(spec, log=lambda _: None)

    # Then
    assert again == lambda_bundle
    assert time.monotonic() - started < 5


HANDLER_RUN = """
import importlib.util, json, sys
bundle, result_file, probed = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
sys.path.insert(0, bundle)
assert not [entry for entry in sys.path if "site-packages" in entry], sys.path
from handler.app import lambda_handler

class Context:
    function_name = "model-api-bundle-test"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:model-api-bundle-test"
    aws_request_id = "bundle-test"

result = lambda_handler(json.load(sys.stdin), Context())
leaked = sorted({name.split(".")[0] for name in sys.modules} & {"boto3", "botocore", "aws_cdk", "pytest"})


def importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is not there either
        return False


importable = sorted(name for name in probed if importable(name))
with open(result_file, "w") as stream:
    json.dump({"result": result, "leaked": leaked, "importable": importable,
               "outside": sorted({m.__file__ for m in list(sys.modules.values())
                                  if getattr(m, "__file__", None) and "site-packages" in m.__file__})}, stream)
"""


@pytest.mark.slow
@pytest.mark.parametrize("bundle_fixture", ["host_bundle", "sklearn_host_bundle"], ids=["served", "sklearn"])
def test_host_bundle_alone_answers_a_predict_event_from_the_manifest_example(bundle_fixture, request, tmp_path):
    # Given: only the bundle and the standard library importable (-I -S, no PYTHONPATH), as on Lambda
    bundle: Bundle = request.getfixturevalue(bundle_fixture)
    manifest = json.loads((bundle.path / "model_artifacts" / "manifest.json").read_text(encoding="utf-8"))
    must_not_import = NOT_IN_BUNDLE[manifest["runtime"]]
    event = predict_event(manifest["example"])
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "POWERTOOLS"))}
    environment |= {"POWERTOOLS_SERVICE_NAME": "model-api", "POWERTOOLS_METRICS_NAMESPACE": "SklearnModelApi"}
    result_file = tmp_path / "result.json"

    # When
    completed = subprocess.run([sys.executable, "-I", "-S", "-c", HANDLER_RUN, str(bundle.path), str(result_file),
                                ",".join(must_not_import)],
                               input=json.dumps(event), text=True, capture_output=True, cwd=bundle.path,
                               env=environment, timeout=120, check=False)

    # Then
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(result_file.read_text(encoding="utf-8"))
    assert outcome["result"]["statusCode"] == 200, outcome["result"]
    body = json.loads(outcome["result"]["body"])
    assert len(body["predictions"]) == len(manifest["example"]["instances"])
    assert outcome["leaked"] == [] and outcome["outside"] == []
    # And nothing the runtime does not use is in the bundle
    assert outcome["importable"] == []


# Bytecode: what the bundle ships is what its Python reads, for every module a cold start imports.
IMPORTED_AT_COLD_START = """
import json, sys
bundle = sys.argv[1]
sys.path.insert(0, bundle)
from handler.app import MODEL
from handler.scoring import score
score(MODEL, MODEL.manifest.example)
print(json.dumps(sorted({m.__file__[len(bundle) + 1:] for m in list(sys.modules.values())
                         if (getattr(m, "__file__", None) or "").startswith(bundle + "/")
                         and m.__file__.endswith(".py")})))
"""


def shipped_pycs(bundle: Path) -> list[Path]:
    return sorted(bundle.rglob("__pycache__/*.pyc"))


def source_of(pyc: Path) -> Path:
    """`a/__pycache__/b.cpython-314.pyc` -> `a/b.py`."""
    return pyc.parent.parent / f"{pyc.name.split('.')[0]}.py"


@pytest.mark.slow
def test_every_pyc_of_the_lambda_bundle_is_unchecked_hash_bytecode_of_its_shipped_source(lambda_bundle: Bundle,
                                                                                        default_config):
    # Given the Lambda bundle cdk.json describes (python3.14 by default)
    version = default_config.python_version
    pycs = shipped_pycs(lambda_bundle.path)

    # Then every pyc is tagged for that Python, starts with its magic number, is hash-based and unchecked,
    # and records the hash of exactly the .py shipped beside it
    assert len(pycs) > 100
    assert {pyc.name.split(".")[1] for pyc in pycs} == {f"cpython-{version.replace('.', '')}"}
    assert {pyc.read_bytes()[:4] for pyc in pycs} == {magic_number(version)}
    assert magic_number("3.14") == (3627).to_bytes(2, "little") + b"\r\n"
    assert [pyc for pyc in pycs if not pyc_header_ok(pyc, source_of(pyc), version)] == []


@pytest.mark.slow
def test_every_module_a_cold_start_imports_has_bytecode_in_the_lambda_bundle(lambda_bundle: Bundle, default_config,
                                                                            served_runtime):
    # Given what has bytecode in the Lambda bundle
    tag = f"cpython-{default_config.python_version.replace('.', '')}"
    sources = sorted(path.relative_to(lambda_bundle.path).as_posix() for path in lambda_bundle.path.rglob("*.py"))
    compiled = {source_of(pyc).relative_to(lambda_bundle.path).as_posix() for pyc in shipped_pycs(lambda_bundle.path)
                if tag in pyc.name}

    # Then the ONNX runtime has bytecode for every module; the scikit-learn runtime for what a cold start imports
    if served_runtime in FULL_BYTECODE_RUNTIMES:
        assert [source for source in sources if source not in compiled] == []
    else:
        needed = [path for path in cold_start_modules(PROJECT_ROOT) if (lambda_bundle.path / path).is_file()]
        assert [source for source in needed if source not in compiled] == []
    assert not [source for source in sources if source.startswith("handler/") and source not in compiled]


@pytest.mark.slow
@pytest.mark.parametrize("bundle_fixture", ["host_bundle", "sklearn_host_bundle"], ids=["served", "sklearn"])
def test_a_cold_start_in_the_host_bundle_imports_only_modules_with_shipped_bytecode(bundle_fixture, request):
    # Given a host bundle (bytecode compiled the same way, for this machine's Python)
    bundle: Bundle = request.getfixturevalue(bundle_fixture)

    # When init and one prediction run from the bundle alone, writing no bytecode
    completed = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", IMPORTED_AT_COLD_START, str(bundle.path)],
                               capture_output=True, text=True, cwd=bundle.path, timeout=300, check=False)

    # Then every module they imported from the bundle has its unchecked hash-based pyc there
    assert completed.returncode == 0, completed.stderr[-3000:]
    imported = json.loads(completed.stdout.strip().splitlines()[-1])
    host = f"{sys.version_info[0]}.{sys.version_info[1]}"
    without = [path for path in imported if not (bundle.path / pyc_path(path, host)).is_file()
               or not pyc_header_ok(bundle.path / pyc_path(path, host), bundle.path / path, host)]
    assert len(imported) > 100 and without == []


@pytest.mark.slow
def test_the_bundle_report_names_the_compiler_and_counts_the_pycs_it_ships(lambda_bundle: Bundle, default_config):
    # Given the report written beside the cached bundle
    report = json.loads(lambda_bundle.path.with_suffix(".json").read_text(encoding="utf-8"))

    # Then it names a compiler of the target's Python (pyodide of that version, or that CPython itself)
    version = default_config.python_version
    assert re.fullmatch(rf"(pyodide {version.replace('.', '')}\.\d+\.\d+|native python{re.escape(version)} at \S+)"
                        rf"( \(CPython {re.escape(version)}\.\d+\))?", lambda_bundle.bytecode_compiler)
    assert report["bytecode"]["compiler"] == lambda_bundle.bytecode_compiler
    # and counts exactly the pycs the bundle holds
    assert report["bytecode"]["modules"] == lambda_bundle.bytecode_modules == len(shipped_pycs(lambda_bundle.path))
