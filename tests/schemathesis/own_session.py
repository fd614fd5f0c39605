"""What every schemathesis run leaves out (tests/tests/processes/schemathesis.rs): an admin's
`PATCH /v1/users/{user_id}` of the run's own account that changes its password, address,
activity or rank. The API ends every session of an account whose credentials change (API.md,
"Sessions"), and a deactivated or demoted caller gets 403s: after such a request, every answer
the run gets is a documented 401 or 403, and it would pass by locking itself out. The test
asserts that it stayed signed in to the end. Changing another account's (the run creates many)
is still checked, as is everything else on its own.

The run's own user id comes from SCHEMATHESIS_OWN_USER_ID. No hooks are registered here: the
hook modules (local_hooks.py, sam_local_hooks.py) call `ends_own_session`.
"""

import os

OWN_ID = os.environ.get("SCHEMATHESIS_OWN_USER_ID", "")
# The fields of UserUpdate whose change ends the caller's sessions or takes its rights.
ENDS_SESSION = {"password", "email", "is_active", "is_superuser"}


def ends_own_session(case):
    if case.method.upper() != "PATCH" or case.path != "/v1/users/{user_id}":
        return False
    if str((case.path_parameters or {}).get("user_id", "")) != OWN_ID:
        return False
    return isinstance(case.body, dict) and bool(ENDS_SESSION & set(case.body))
