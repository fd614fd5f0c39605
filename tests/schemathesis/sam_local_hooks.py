"""schemathesis hooks for its run under `sam local start-api` (tests/tests/processes/sam_local.rs).

SAM CLI's emulation of API Gateway decodes every request body that is not of a binary media type
as UTF-8 (samcli/local/apigw/event_constructor.py), and answers its own 502 when that fails, before
any function runs. API Gateway's HTTP APIs hand such a body to the function base64-encoded, and the
functions answer it with the contract's 4xx (the same run against the local server checks that).
So under SAM, and only there, schemathesis does not send a body that is not valid UTF-8, nor a
request whose method SAM does not route (below). Nor, as every run, what own_session.py says.
"""

import schemathesis

from own_session import ends_own_session


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


# The methods SAM mounts each route for (samcli/local/apigw/route.py).
SAM_METHODS = {"GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "DELETE"}


@schemathesis.hook
def filter_case(ctx, case):
    # SAM answers any other method (TRACE, QUERY, ...) with its own 403 before a function runs;
    # API Gateway's ANY routes pass the request on, and the function answers the contract's 405
    # (the run against the local server checks that). Undeclared methods among SAM's seven are
    # still checked under SAM.
    return case.method.upper() in SAM_METHODS and not ends_own_session(case)
