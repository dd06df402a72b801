"""Sign requests with botocore for sigv4's Go tests.

Reads a JSON job on stdin and writes JSON on stdout:
  - "signed": requests signed with botocore.auth.SigV4Auth (header form) and
    SigV4QueryAuth (presigned form), for the Go test to send and verify;
  - "client": the outcome of real botocore Lambda client calls made against
    the Go test server at job["endpoint"], with the right and a wrong secret.
Uses only botocore, as the AWS CLI v1 installed on the host does.
"""
import json
import sys

import botocore.session
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def sign(job, case):
    creds = Credentials(job["key"], job["secret"], case.get("token"))
    url = job["endpoint"] + case["path"]
    if case.get("query"):
        url += "?" + case["query"]
    body = case.get("body", "").encode()
    req = AWSRequest(method=case["method"], url=url, data=body,
                     headers=case.get("headers", {}))
    if case.get("presign"):
        SigV4QueryAuth(creds, "lambda", job["region"], expires=case["presign"]).add_auth(req)
    else:
        SigV4Auth(creds, "lambda", job["region"]).add_auth(req)
    prepared = req.prepare()
    return {
        "name": case["name"],
        "method": prepared.method,
        "url": prepared.url,
        "headers": [[k, v if isinstance(v, str) else v.decode()] for k, v in prepared.headers.items()],
        "body": body.decode(),
    }


def client_calls(job, secret):
    session = botocore.session.get_session()
    client = session.create_client(
        "lambda", region_name=job["region"], endpoint_url=job["endpoint"],
        aws_access_key_id=job["key"], aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}))
    arn = "arn:aws:lambda:%s:123456789012:function:my-fn" % job["region"]
    calls = {
        "Invoke ARN $LATEST": lambda: client.invoke(FunctionName=arn, Qualifier="$LATEST", Payload=b'{"a":  "b"}'),
        "Invoke name:qualifier": lambda: client.invoke(FunctionName="my-fn:$LATEST", Payload=b"{}"),
        # Every x-amz-* header Lambda reads must reach the server signed.
        "Invoke with Lambda's x-amz headers": lambda: client.invoke(
            FunctionName="my-fn", InvocationType="Event", LogType="Tail", ClientContext="e30=", Payload=b"{}"),
        "GetFunction": lambda: client.get_function(FunctionName=arn, Qualifier="live"),
        "ListFunctions": lambda: client.list_functions(MaxItems=5, FunctionVersion="ALL", Marker="m/k+1"),
        "UntagResource": lambda: client.untag_resource(Resource=arn, TagKeys=["b", "a", "a b"]),
    }
    out = {}
    for name, call in calls.items():
        try:
            call()
            out[name] = "ok"
        except ClientError as e:
            out[name] = "%s: %s" % (e.response["Error"]["Code"], e.response["Error"]["Message"])
    return out


def main():
    job = json.load(sys.stdin)
    result = {"signed": [sign(job, c) for c in job["cases"]]}
    result["client"] = client_calls(job, job["secret"])
    result["clientWrongSecret"] = client_calls(job, "wrong-secret")
    json.dump(result, sys.stdout)


main()
