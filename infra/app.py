"""The CDK app: reads cdk.json context, bundles the model, builds the stack, runs cdk-nag.

The only module that reads context or the environment. `npx aws-cdk synth` runs it as
`.venv/bin/python -m infra.app` (see cdk.json).
"""

from __future__ import annotations

import sys

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from builder.bundler import BundleError, BundleSpec, lambda_target, project_manifest
from handler.manifest import Manifest
from infra.code_asset import lambda_code
from infra.config import ConfigError, StackConfig, load_config
from infra.stack import ModelApiStack


def build(app: App) -> ModelApiStack:
    """Add the model API stack, configured from app's context, and the cdk-nag rule packs to app."""
    config = load_config(app.node.get_all_context())
    manifest = project_manifest()
    check_published_model(config, manifest)
    # A published model is read from S3: the bundle holds only its runtime's libraries.
    spec = BundleSpec.for_project(lambda_target(config.architecture, config.python_version),
                                  ship_model=not config.model_is_published)
    # No env: the stack is environment-agnostic, so synth needs no credentials and looks nothing up.
    stack = ModelApiStack(app, config.stack_name, config=config, function_code=lambda_code(spec), manifest=manifest,
                          description=f"{config.service_name} ({config.stage}): scikit-learn model API")
    Tags.of(stack).add("service", config.service_name)
    Tags.of(stack).add("stage", config.stage)
    add_nag_checks(app)
    return stack


def check_published_model(config: StackConfig, manifest: Manifest) -> None:
    """A published model must be the one in model_artifacts/: the bundle's libraries are chosen from its manifest."""
    if config.model_is_published and config.model_sha256 != manifest.sha256:
        raise ConfigError(
            f"model_sha256: got {config.model_sha256!r}; allowed: the sha256 model_artifacts/manifest.json pins "
            f"({manifest.sha256}), since the bundle's libraries are chosen for that manifest's runtime: publish "
            "that model (python -m toolkit.publish) or put the published model's manifest in model_artifacts/")


def add_nag_checks(app: App) -> None:
    """cdk-nag's AWS Solutions and Serverless packs: synth fails on any unacknowledged finding."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def main() -> None:
    app = App()
    try:
        build(app)
    except (ConfigError, BundleError) as error:
        sys.exit(f"error: {error}")
    app.synth()


if __name__ == "__main__":
    main()
