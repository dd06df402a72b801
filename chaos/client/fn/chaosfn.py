# The function chaos scenarios invoke. Standard library only.
import os
import time
import uuid

SANDBOX = uuid.uuid4().hex  # one per execution environment
try:
    with open(os.path.join(os.path.dirname(__file__), "marker.txt")) as f:
        MARKER = f.read().strip()  # which upload of the code this is
except OSError:
    MARKER = ""


def handler(event, context):
    start = time.time_ns()
    nonce = str(event.get("nonce", ""))
    print("CHAOS-DELIVERY " + nonce, flush=True)
    sleep_ms = int(event.get("sleep_ms", 0))
    if sleep_ms > 0:
        time.sleep(sleep_ms / 1000.0)
    end = time.time_ns()
    # The execution as the function saw it, whether or not its answer
    # reaches the caller.
    print("CHAOS-EXEC %s %d %d %s %s" % (nonce, start, end, SANDBOX, MARKER), flush=True)
    return {
        "nonce": nonce,
        "start_unix_nano": start,
        "end_unix_nano": end,
        "sandbox": SANDBOX,
        "marker": MARKER,
    }
