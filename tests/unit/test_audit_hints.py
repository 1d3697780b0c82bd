"""The hint of a failed audit action follows the kind of error (pipe.audit.executor.hint_for):
only a refusal asks for permissions; a CreateAccessKey in doubt says the next run cleans up."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from pipe.audit.executor import FIX_HINT, ORPHAN_HINT, PERMISSIONS_HINT, RERUN_HINT, hint_for


def refused(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "CreateAccessKey")


@pytest.mark.parametrize(
    ("exc", "in_doubt", "hint"),
    [
        (refused("AccessDenied", 403), False, PERMISSIONS_HINT),
        (refused("AccessDenied", 403), True, PERMISSIONS_HINT),
        (refused("LimitExceeded", 409), True, ORPHAN_HINT),
        (ConnectionClosedError(endpoint_url="https://iam.amazonaws.com"), True, ORPHAN_HINT),
        (ConnectionClosedError(endpoint_url="https://iam.amazonaws.com"), False, RERUN_HINT),
        (refused("Throttling"), False, RERUN_HINT),
        (refused("ServiceFailure", 500), False, RERUN_HINT),
        (refused("NoSuchEntity", 404), False, FIX_HINT),
    ],
)
def test_the_hint_follows_the_kind_of_error(exc: Exception, in_doubt: bool, hint: str) -> None:
    assert hint_for(exc, key_in_doubt=in_doubt) == hint
    assert ("Grant the audit role" in hint) is (hint == PERMISSIONS_HINT)
    if hint == ORPHAN_HINT:
        assert hint.startswith("Re-run") and "removes a key this run may have made" in hint
