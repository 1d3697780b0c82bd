"""Misspelt variables (issue 11, item 11): a name in the step's environment that is not the
pipe's, but close to one of the pipe's, gets a "did you mean" warning. Values are never read.

Names that are someone else's are left alone: Bitbucket's own variables, the AWS SDK's
per-service endpoint variables (``AWS_ENDPOINT_URL_<SERVICE>``), the items of a YAML list
(``TARGETS_0``...). difflib is imported only when a name shares its first letters with one of
the pipe's (start-up time of `assume`)."""

from __future__ import annotations

from collections.abc import Iterable

from pipe import schema

CUTOFF = 0.8  # difflib's ratio: AWS_ROLE_ARN -> AWS_OIDC_ROLE_ARN is 0.83, AWS_OIDC_ROLE_ARM 0.94
# Bitbucket's default variables (support.atlassian.com: "Variables and secrets"): theirs, not ours.
BITBUCKET_OWN = frozenset(
    {
        "BITBUCKET_BOOKMARK",
        "BITBUCKET_BRANCH",
        "BITBUCKET_BUILD_NUMBER",
        "BITBUCKET_CLONE_DIR",
        "BITBUCKET_COMMIT",
        "BITBUCKET_DEPLOYMENT_ENVIRONMENT",
        "BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID",
        "BITBUCKET_DOCKER_HOST_INTERNAL",
        "BITBUCKET_EXIT_CODE",
        "BITBUCKET_GIT_HTTP_ORIGIN",
        "BITBUCKET_GIT_SSH_ORIGIN",
        "BITBUCKET_PARALLEL_STEP",
        "BITBUCKET_PARALLEL_STEP_COUNT",
        "BITBUCKET_PIPELINE_UUID",
        "BITBUCKET_PIPE_SHARED_STORAGE_DIR",
        "BITBUCKET_PIPE_STORAGE_DIR",
        "BITBUCKET_PROJECT_KEY",
        "BITBUCKET_PROJECT_UUID",
        "BITBUCKET_PR_DESTINATION_BRANCH",
        "BITBUCKET_PR_DESTINATION_COMMIT",
        "BITBUCKET_PR_ID",
        "BITBUCKET_REPO_FULL_NAME",
        "BITBUCKET_REPO_IS_PRIVATE",
        "BITBUCKET_REPO_OWNER",
        "BITBUCKET_REPO_OWNER_UUID",
        "BITBUCKET_REPO_SLUG",
        "BITBUCKET_REPO_UUID",
        "BITBUCKET_SSH_KEY_FILE",
        "BITBUCKET_STEP_OIDC_TOKEN",
        "BITBUCKET_STEP_RUN_NUMBER",
        "BITBUCKET_STEP_TRIGGERER_UUID",
        "BITBUCKET_STEP_UUID",
        "BITBUCKET_TAG",
        "BITBUCKET_WORKSPACE",
    }
)
# Every run looks at every name of its environment here: plain string tests, no pattern to
# compile at start-up.
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_CHARS = _UPPER | frozenset("0123456789_")


def _upper_name(name: str) -> bool:
    """``[A-Z][A-Z0-9_]{2,}``: an upper-case variable name of three characters or more."""
    return len(name) >= 3 and name[0] in _UPPER and all(char in _NAME_CHARS for char in name)


def _theirs(name: str) -> bool:
    """The SDK's ``AWS_ENDPOINT_URL_<SERVICE>``, or an item or the count of a YAML list
    (``NAME_0``, ``NAME_COUNT``)."""
    if name.startswith("AWS_ENDPOINT_URL_") and len(name) > len("AWS_ENDPOINT_URL_"):
        return True
    head, _, tail = name.rpartition("_")
    return bool(head) and (tail == "COUNT" or (tail.isascii() and tail.isdigit()))


def _ours() -> list[str]:
    return [v.name for v in schema.VARIABLES if v.user or v.environment]


def candidates(names: Iterable[str]) -> list[str]:
    """Names that may be misspellings of ours: upper case, not ours, not someone else's, and
    starting with the same three characters as one of ours."""
    ours = _ours()
    prefixes = {name[:3] for name in ours}
    return [
        name
        for name in names
        if _upper_name(name)
        and name not in schema.BY_NAME
        and name not in BITBUCKET_OWN
        and not _theirs(name)
        and name[:3] in prefixes
    ]


def suggestions(names: Iterable[str]) -> list[tuple[str, str]]:
    """(the name given, the pipe's variable it is closest to) for each likely misspelling."""
    found = candidates(names)
    if not found:
        return []
    import difflib

    ours = _ours()
    pairs = []
    for name in sorted(found):
        close = difflib.get_close_matches(name, ours, n=1, cutoff=CUTOFF)
        if close:
            pairs.append((name, close[0]))
    return pairs
