"""The HTTP API: the handler's routes to the model function, IAM (SigV4) auth, throttling and JSON access logs."""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsii
from aws_cdk import Acknowledgment, Annotations, Duration, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.aws_apigatewayv2_authorizers import HttpIamAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from handler.routes import served_routes
from infra.constructs.log_group import retained_log_group
from infra.constructs.stack_output import stable_output
from infra.outputs import API_URL

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
    """The handler's routes (handler.routes; /docs only when enabled) on an HTTP API in front of `handler`."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 handler: lambda_.IFunction,
                 require_iam_auth: bool,
                 throttling_rate_limit: float,
                 throttling_burst_limit: int,
                 log_retention_days: int,
                 cors_allowed_origins: Sequence[str] = (),
                 docs_enabled: bool = False) -> None:
        super().__init__(scope, construct_id)
        # GET /docs only with docs_enabled: under IAM auth a browser cannot open it unsigned.
        self.routes = served_routes(docs_enabled)
        self.http_api = apigwv2.HttpApi(
            self, "HttpApi",
            description="Model API: " + ", ".join(f"{route.method} {route.path}" for route in self.routes),
            create_default_stage=False,
            default_authorizer=HttpIamAuthorizer() if require_iam_auth else apigwv2.HttpNoneAuthorizer(),
            cors_preflight=_cors(cors_allowed_origins),
        )
        integration = HttpLambdaIntegration("ModelIntegration", handler)
        for route in self.routes:
            self.http_api.add_routes(path=route.path, methods=[apigwv2.HttpMethod(route.method)],
                                     integration=integration)
        self.access_logs = retained_log_group(self, "AccessLogs", retention_days=log_retention_days)
        self.stage = self.http_api.add_stage(
            "DefaultStage",
            stage_name=STAGE_NAME,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=throttling_rate_limit, burst_limit=throttling_burst_limit),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        stable_output(self, API_URL, value=self.stage.url, description="Base URL of the model API")
        if not require_iam_auth:
            self._allow_anonymous_callers()

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let grantee call exactly this API's routes on its stage (execute-api:Invoke, SigV4)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[self.http_api.arn_for_execute_api(route.method, route.path, STAGE_NAME)
                           for route in self.routes],
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
