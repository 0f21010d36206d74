"""The bundle builder as CDK sees it: a local-bundling hook and the function's code asset (no Docker)."""

from __future__ import annotations

from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from builder.bundler import BundleSpec, Log, build_bundle, link_tree, stderr_log


@jsii.implements(ILocalBundling)
class LocalBundler:
    """CDK's local-bundling hook: fills the asset directory from the cached bundle, never Docker."""

    def __init__(self, spec: BundleSpec, log: Log = stderr_log) -> None:
        self._spec = spec
        self._log = log

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        bundle = build_bundle(self._spec, self._log)
        self._log(bundle.summary())
        link_tree(bundle.path, Path(output_dir))
        return True


def lambda_code(spec: BundleSpec, log: Log = stderr_log) -> lambda_.Code:
    """The function's code asset, keyed on the bundle hash so CDK neither fingerprints nor runs Docker."""
    return lambda_.Code.from_asset(
        str(spec.project_root),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=spec.key,
        bundling=BundlingOptions(image=DockerImage.from_registry("local-bundling-only"),
                                 local=LocalBundler(spec, log)),
    )
