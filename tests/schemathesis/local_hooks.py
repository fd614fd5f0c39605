"""schemathesis hooks for its run against the local server (tests/tests/processes/schemathesis.rs):
only what own_session.py says every run leaves out."""

import schemathesis

from own_session import ends_own_session


@schemathesis.hook
def filter_case(ctx, case):
    return not ends_own_session(case)
