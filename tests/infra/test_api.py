"""The HTTP API construct: routes, IAM auth on each, throttling, JSON access logs, CORS and invoke grants."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template

from handler.routes import DOCS_ROUTES, ROUTES
from infra.constructs.api import ACCESS_LOG_FIELDS, ModelApi
from infra.outputs import API_URL
from tests.infra.conftest import logical_id, make_api

ROUTE_KEYS = {"POST /predict", "GET /health", "GET /model", "GET /openapi.json"}


def make_api_and_handler(stack: Stack, code: lambda_.Code, **overrides: Any) -> tuple[ModelApi, lambda_.Function]:
    handler = lambda_.Function(stack, "Handler", runtime=lambda_.Runtime.PYTHON_3_14,
                               handler="index.lambda_handler", code=code)
    return make_api(stack, handler, **overrides), handler


def routes(template: Template) -> dict[str, dict[str, Any]]:
    return {route["Properties"]["RouteKey"]: route["Properties"]
            for route in template.find_resources("AWS::ApiGatewayV2::Route").values()}


def test_the_api_routes_are_the_handlers_routes(stack, tiny_code, handler_app):
    # Given: the handler as initialised without DOCS_ENABLED, as the stack deploys it
    served = {f"{route.method} {route.path}" for route in handler_app.ROUTES.values()}

    # When
    api, _ = make_api_and_handler(stack, tiny_code)

    # Then
    assert {f"{route.method} {route.path}" for route in api.routes} == served == ROUTE_KEYS
    assert api.routes == ROUTES


def test_every_route_requires_iam_signatures(stack, tiny_code):
    # Given / When
    make_api_and_handler(stack, tiny_code)

    # Then
    found = routes(Template.from_stack(stack))
    assert set(found) == ROUTE_KEYS
    assert {key: route["AuthorizationType"] for key, route in found.items()} == dict.fromkeys(ROUTE_KEYS, "AWS_IAM")


def test_docs_enabled_adds_the_docs_route_with_the_same_auth_and_grants(stack, tiny_code):
    # Given / When
    api, _ = make_api_and_handler(stack, tiny_code, docs_enabled=True)
    api.grant_invoke(iam.Role(stack, "Caller", assumed_by=iam.AccountRootPrincipal()))

    # Then
    template = Template.from_stack(stack)
    found = routes(template)
    assert set(found) == ROUTE_KEYS | {f"GET {route.path}" for route in DOCS_ROUTES}
    assert found["GET /docs"]["AuthorizationType"] == "AWS_IAM"
    [policy] = template.find_resources("AWS::IAM::Policy").values()
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert len(statement["Resource"]) == len(ROUTE_KEYS) + len(DOCS_ROUTES)
    assert "/docs" in json.dumps(statement["Resource"][-1])


def test_routes_reach_the_handler_with_payload_format_2(stack, tiny_code):
    # Given / When
    _, handler = make_api_and_handler(stack, tiny_code)

    # Then
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::ApiGatewayV2::Integration", 1)
    template.has_resource_properties("AWS::ApiGatewayV2::Integration", {
        "IntegrationType": "AWS_PROXY",
        "PayloadFormatVersion": "2.0",
        "IntegrationUri": {"Fn::GetAtt": [logical_id(handler), "Arn"]},
    })
    template.resource_count_is("AWS::Lambda::Permission", len(ROUTE_KEYS))


def test_auth_none_opens_every_route_and_warns(stack, tiny_code):
    # Given / When
    make_api_and_handler(stack, tiny_code, require_iam_auth=False)

    # Then
    found = routes(Template.from_stack(stack))
    assert {route["AuthorizationType"] for route in found.values()} == {"NONE"}
    Annotations.from_stack(stack).has_warning("/Default/Api", Match.string_like_regexp("auth is 'none'"))


def test_default_stage_is_throttled_and_deploys_itself(stack, tiny_code):
    # Given / When
    make_api_and_handler(stack, tiny_code)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::ApiGatewayV2::Stage", {
        "StageName": "$default",
        "AutoDeploy": True,
        "DefaultRouteSettings": {"ThrottlingRateLimit": 25, "ThrottlingBurstLimit": 40},
    })


def test_access_logs_are_one_json_object_per_request_in_a_retained_group(stack, tiny_code):
    # Given / When
    api, _ = make_api_and_handler(stack, tiny_code)

    # Then
    template = Template.from_stack(stack)
    stage = next(iter(template.find_resources("AWS::ApiGatewayV2::Stage").values()))["Properties"]
    settings = stage["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": [logical_id(api.access_logs), "Arn"]}
    assert json.loads(settings["Format"]) == ACCESS_LOG_FIELDS
    assert {"requestId", "status", "routeKey", "caller", "integrationError"} <= set(ACCESS_LOG_FIELDS)
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_no_cors_unless_origins_are_configured(stack, tiny_code):
    # Given / When
    make_api_and_handler(stack, tiny_code)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::ApiGatewayV2::Api", {
        "ProtocolType": "HTTP", "CorsConfiguration": Match.absent(),
    })


def test_cors_allows_only_the_configured_origins_and_signing_headers(stack, tiny_code):
    # Given / When
    make_api_and_handler(stack, tiny_code, cors_allowed_origins=["https://app.example.com"])

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::ApiGatewayV2::Api", {
        "CorsConfiguration": {
            "AllowOrigins": ["https://app.example.com"],
            "AllowMethods": ["GET", "POST", "OPTIONS"],
            "AllowHeaders": Match.array_with(["authorization", "x-amz-date", "x-amz-security-token"]),
            "MaxAge": 3600,
        },
    })


def test_grant_invoke_allows_exactly_this_apis_routes_on_its_stage(stack, tiny_code):
    # Given
    api, _ = make_api_and_handler(stack, tiny_code)
    caller = iam.Role(stack, "Caller", assumed_by=iam.AccountRootPrincipal())

    # When
    api.grant_invoke(caller)

    # Then
    api_id = logical_id(api.http_api)
    policy = next(iter(Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()))
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == [_execute_api_arn(api_id, route) for route in
                                     ("POST/predict", "GET/health", "GET/model", "GET/openapi.json")]


def test_api_url_is_a_stable_stack_output(stack, tiny_code):
    # Given / When
    make_api_and_handler(stack, tiny_code)

    # Then
    outputs = Template.from_stack(stack).find_outputs(API_URL)
    assert "execute-api" in json.dumps(outputs[API_URL]["Value"])


def _execute_api_arn(api_id: str, route: str) -> dict[str, Any]:
    """arn:<partition>:execute-api:<region>:<account>:<api-id>/$default/<METHOD>/<path>, as CloudFormation joins it."""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":execute-api:", {"Ref": "AWS::Region"}, ":",
                              {"Ref": "AWS::AccountId"}, ":", {"Ref": api_id}, f"/$default/{route}"]]}
