import json
import os

calls = 0  # module state survives warm invocations


def handler(event, context):
    global calls
    calls += 1
    op = event.get("op", "echo")
    if op == "error":
        raise ValueError("boom: " + str(event.get("value", "")))
    if op == "print":
        print(event.get("value", ""))
    cc = None
    if context.client_context is not None:
        cc = getattr(context.client_context, "custom", None)
    return {
        "runtime": "python",
        "event": event,
        "calls": calls,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "request_id": context.aws_request_id,
        "invoked_arn": context.invoked_function_arn,
        "greeting": os.environ.get("GREETING"),
        "client_custom": cc,
        "marker": "v1",
    }
