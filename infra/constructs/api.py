"""The HTTP API: the handler's routes to the model function, IAM (SigV4) auth, throttling and JSON access logs."""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsii
from aws_cdk import Acknowledgment, Annotations, CfnOutput, Duration, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.aws_apigatewayv2_authorizers import HttpIamAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from infra.constructs.log_group import retained_log_group

# The handler's routes. GET /docs only with docs_enabled: under IAM auth a browser cannot open it unsigned.
ROUTES = (("POST", "/predict"), ("GET", "/health"), ("GET", "/model"), ("GET", "/openapi.json"))
DOCS_ROUTE = ("GET", "/docs")
# `$default` serves the routes at the root, so the handler sees /predict, not /<stage>/predict.
STAGE_NAME = "$default"
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "sourceIp": "$context.identity.sourceIp",
    "caller": "$context.identity.userArn",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
}
# What a browser must send to sign a request with SigV4.
CORS_HEADERS = ("authorization", "content-type", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")


class ModelApi(Construct):
    """The handler's routes (`ROUTES`, plus /docs when enabled) on an HTTP API in front of `api_handler`."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 api_handler: lambda_.IFunction,
                 api_require_iam_auth: bool,
                 api_throttling_rate_limit: float,
                 api_throttling_burst_limit: int,
                 api_cors_allowed_origins: Sequence[str],
                 api_log_retention_days: int,
                 api_docs_enabled: bool = False) -> None:
        super().__init__(scope, construct_id)
        self.routes = (*ROUTES, DOCS_ROUTE) if api_docs_enabled else ROUTES
        self.http_api = apigwv2.HttpApi(
            self, "HttpApi",
            description="Model API: " + ", ".join(f"{method} {path}" for method, path in self.routes),
            create_default_stage=False,
            default_authorizer=HttpIamAuthorizer() if api_require_iam_auth else apigwv2.HttpNoneAuthorizer(),
            cors_preflight=_cors(api_cors_allowed_origins),
        )
        integration = HttpLambdaIntegration("ModelIntegration", api_handler)
        for method, path in self.routes:
            self.http_api.add_routes(path=path, methods=[apigwv2.HttpMethod(method)], integration=integration)
        self.access_logs = retained_log_group(self, "AccessLogs", retention_days=api_log_retention_days)
        self.stage = self.http_api.add_stage(
            "DefaultStage",
            stage_name=STAGE_NAME,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=api_throttling_rate_limit,
                                              burst_limit=api_throttling_burst_limit),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        url = CfnOutput(self, "ApiUrl", value=self.stage.url, description="Base URL of the model API")
        url.override_logical_id("ApiUrl")  # a stable output key for toolkit.invoke and CI
        if not api_require_iam_auth:
            self._allow_anonymous_callers()

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let grantee call exactly this API's routes on its stage (execute-api:Invoke, SigV4)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[self.http_api.arn_for_execute_api(method, path, STAGE_NAME)
                           for method, path in self.routes],
        )

    def _allow_anonymous_callers(self) -> None:
        Annotations.of(self).add_warning_v2(
            "model-api:auth-none",
            "auth is 'none': anyone who finds the URL can call the model and run up the bill; "
            "only throttling limits them")
        Validations.of(self.http_api).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-APIG4",
            reason="auth 'none' was chosen explicitly in cdk.json; synth warns about it"))


def _cors(origins: Sequence[str]) -> apigwv2.CorsPreflightOptions | None:
    """CORS for the configured browser origins only; none configured means no CORS headers at all."""
    if not origins:
        return None
    return apigwv2.CorsPreflightOptions(
        allow_origins=list(origins),
        allow_methods=[apigwv2.CorsHttpMethod.GET, apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.OPTIONS],
        allow_headers=list(CORS_HEADERS),
        max_age=Duration.hours(1),
    )


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """One JSON object per request in `log_group`."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._log_group = log_group

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return apigwv2.LogGroupLogDestination(self._log_group)

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS))
