"""Stoke's Python bootstrap: the AWS Lambda Runtime API loop.

Standard library only. Loads the handler named by _HANDLER ("file.function",
the file relative to LAMBDA_TASK_ROOT, "dir/file.function" allowed), reports
import and syntax errors through /init/error, then serves invocations one at a
time, keeping module state across warm invocations.
"""

import http.client
import importlib
import json
import os
import sys
import time
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PREFIX = "/2018-06-01/runtime"


class LambdaContext:
    """The context object handed to handlers, with Lambda's documented fields."""

    def __init__(self, request_id, deadline_ms, invoked_arn, client_context, identity):
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_arn
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = client_context
        self.identity = identity
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def __repr__(self):
        return "LambdaContext([aws_request_id=%s,function_name=%s,function_version=%s])" % (
            self.aws_request_id, self.function_name, self.function_version)


class _Obj:
    """Attribute access over a dict, for client_context and identity."""

    def __init__(self, d):
        for k, v in (d or {}).items():
            setattr(self, k, _Obj(v) if isinstance(v, dict) else v)


class ClientContext:
    def __init__(self, d):
        self.client = _Obj(d.get("client")) if d.get("client") else None
        self.custom = d.get("custom")
        self.env = d.get("env")


class CognitoIdentity:
    def __init__(self, d):
        self.cognito_identity_id = d.get("cognitoIdentityId") or d.get("cognito_identity_id")
        self.cognito_identity_pool_id = d.get("cognitoIdentityPoolId") or d.get("cognito_identity_pool_id")


class Conn:
    def __init__(self):
        host, _, port = API.partition(":")
        self.c = http.client.HTTPConnection(host, int(port or 80))

    def req(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                self.c.request(method, PREFIX + path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                return r.status, r.headers, data
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                if attempt:
                    raise


class MarshalError(Exception):
    pass


def error_body(exc, error_type=None):
    tb = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(tb),
    }


def to_json(obj):
    # Lambda's own Python runtime serialises with json.dumps' default
    # separators; match it byte for byte.
    return json.dumps(obj).encode()


def load_handler(conn):
    spec = os.environ.get("_HANDLER", "")
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    sys.path.insert(0, task_root)
    try:
        modpath, fname = spec.rsplit(".", 1)
    except ValueError:
        return init_error(conn, "Runtime.MalformedHandlerName",
                          "Bad handler '%s': not enough values to unpack (expected 2, got 1)" % spec)
    modname = modpath.replace("/", ".")
    try:
        mod = importlib.import_module(modname)
    except SyntaxError as e:
        return init_error(conn, "Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, e), e)
    except ImportError as e:
        return init_error(conn, "Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, e), e)
    except Exception as e:  # the module raised while initialising
        return init_error(conn, type(e).__name__, str(e), e)
    fn = getattr(mod, fname, None)
    if fn is None:
        return init_error(conn, "Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))
    return fn


def init_error(conn, error_type, message, exc=None):
    body = {"errorMessage": message, "errorType": error_type, "requestId": "",
            "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)) if exc else []}
    print("[ERROR] %s: %s" % (error_type, message), file=sys.stderr, flush=True)
    conn.req("POST", "/init/error", to_json(body), {"Lambda-Runtime-Function-Error-Type": error_type})
    sys.exit(1)


def main():
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    conn = Conn()
    handler = load_handler(conn)
    while True:
        status, h, body = conn.req("GET", "/invocation/next")
        if status != 200:
            print("[ERROR] /next answered %d: %r" % (status, body[:200]), file=sys.stderr, flush=True)
            sys.exit(1)
        rid = h.get("Lambda-Runtime-Aws-Request-Id")
        if h.get("Lambda-Runtime-Trace-Id"):
            os.environ["_X_AMZN_TRACE_ID"] = h.get("Lambda-Runtime-Trace-Id")
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        cc = h.get("Lambda-Runtime-Client-Context")
        ident = h.get("Lambda-Runtime-Cognito-Identity")
        ctx = LambdaContext(rid, int(h.get("Lambda-Runtime-Deadline-Ms", "0")),
                            h.get("Lambda-Runtime-Invoked-Function-Arn"),
                            ClientContext(json.loads(cc)) if cc else None,
                            CognitoIdentity(json.loads(ident)) if ident else None)
        try:
            event = json.loads(body) if body else None
            result = handler(event, ctx)
            try:
                out = to_json(result)
            except (TypeError, ValueError) as e:
                raise MarshalError("Unable to marshal response: %s" % e) from None
        except Exception as e:
            err = error_body(e, "Runtime.MarshalError" if isinstance(e, MarshalError) else None)
            err["requestId"] = rid
            print("[ERROR] %s: %s\n%s" % (err["errorType"], err["errorMessage"], "".join(err["stackTrace"])),
                  file=sys.stderr, flush=True)
            conn.req("POST", "/invocation/%s/error" % rid, to_json(err),
                     {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        conn.req("POST", "/invocation/%s/response" % rid, out)


if __name__ == "__main__":
    main()
