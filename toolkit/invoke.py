"""Call the deployed model API as an IAM principal: SigV4-signed with your AWS profile's credentials.

    python -m toolkit.invoke [--url URL] [--path /predict] [--file request.json] [--profile P] [--region R]

Without --url, the URL is the stack's ApiUrl output; without --file, `POST /predict` sends the
manifest's example request and the other paths are called with GET.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from handler.manifest import read_manifest
from infra.config import project_config
from infra.outputs import API_URL

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICE = "execute-api"
# API Gateway gives up on the integration after 30 s.
TIMEOUT_SECONDS = 35


def signed_request(url: str, *, body: bytes | None, credentials: Credentials, region: str) -> AWSRequest:
    """A request to url, POST with a JSON body or GET without, signed for execute-api in region."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = AWSRequest(method="POST" if body is not None else "GET", url=url, data=body, headers=headers)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return request


def send(request: AWSRequest) -> tuple[int, str]:
    """Send a signed request; return the status and body, error statuses included."""
    prepared = request.prepare()
    outgoing = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers),
                                      method=prepared.method)
    try:
        with urllib.request.urlopen(outgoing, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def region_from_url(url: str) -> str | None:
    """`https://abc.execute-api.eu-west-1.amazonaws.com/` -> `eu-west-1`."""
    match = re.search(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", url)
    return match.group(1) if match else None


def stack_output(session: botocore.session.Session, region: str, stack_name: str, key: str = API_URL) -> str:
    """One output of the deployed stack (by default the API's base URL)."""
    cloudformation = session.create_client("cloudformation", region_name=region)
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return output["OutputValue"]
    raise LookupError(f"stack {stack_name} has no {key} output")


def request_body(path: str, file: str | None) -> bytes | None:
    """The body to send: the file (or stdin for '-'), the manifest's example for /predict, else none."""
    if file == "-":
        return sys.stdin.buffer.read()
    if file:
        return Path(file).read_bytes()
    if path == "/predict":
        return example_body()
    return None


def example_body(rows: int | None = None) -> bytes:
    """The manifest's example request, or its first `rows` instances."""
    instances = read_manifest(PROJECT_ROOT / "model_artifacts").example["instances"]
    return json.dumps({"instances": instances[:rows]}).encode()


def default_stack_name() -> str:
    """The stack name cdk.json's context gives (`<service_name>-<stage>`)."""
    return project_config().stack_name


@dataclass(frozen=True)
class DeployedApi:
    """Where the deployed API is, and what to sign calls to it with."""

    session: botocore.session.Session
    credentials: Credentials
    region: str
    stack: str
    url: str  # without a trailing slash


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that locate the deployed API and sign calls to it."""
    parser.add_argument("--url", help="API base URL (default: the stack's ApiUrl output)")
    parser.add_argument("--profile", help="AWS profile to sign with (default: the usual credential chain)")
    parser.add_argument("--region", help="AWS region (default: from the URL, else the profile's)")
    parser.add_argument("--stack", help="stack to read outputs from (default: from cdk.json)")


def deployed_api(parser: argparse.ArgumentParser, args: argparse.Namespace) -> DeployedApi:
    """Resolve add_api_arguments' options; a parser error says what is missing."""
    session = botocore.session.Session(profile=args.profile)
    credentials = session.get_credentials()
    if credentials is None:
        parser.error("no AWS credentials found: pass --profile or configure the AWS CLI")
    region = args.region or region_from_url(args.url or "") or session.get_config_variable("region")
    if not region:
        parser.error("no region: pass --region")
    stack = args.stack or default_stack_name()
    url = (args.url or stack_output(session, region, stack)).rstrip("/")
    return DeployedApi(session, credentials, region, stack, url)


def main(argv: Sequence[str] | None = None) -> int:
    """Sign, send, print the status and body; exit 0 only on a 2xx answer."""
    parser = argparse.ArgumentParser(prog="python -m toolkit.invoke", description=__doc__.splitlines()[0])
    add_api_arguments(parser)
    parser.add_argument("--path", default="/predict", help="route to call (default: /predict)")
    parser.add_argument("--file", help="JSON request body, '-' for stdin (default for /predict: the manifest example)")
    args = parser.parse_args(argv)
    api = deployed_api(parser, args)
    request = signed_request(api.url + args.path, body=request_body(args.path, args.file),
                             credentials=api.credentials, region=api.region)
    status, body = send(request)
    print(status)
    print(body)
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
