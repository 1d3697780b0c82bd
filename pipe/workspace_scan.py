"""Read a workspace from Bitbucket for the migration report (CHECK_SCOPE=workspace): every
repository (every page of the listing), each one's repository variables, deployment
environments and their variables, and its pipeline file on the main branch; and the workspace's
own variables. Reads only. Repositories are read by a bounded pool of threads sharing the one
client (its retries: 429 with Retry-After, 5xx, dropped connections).

A repository that cannot be read (403, 404, or still failing after the client's retries) is a
scan with an error; only a workspace that cannot be listed stops the run."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pipe import migration
from pipe.bitbucket import Bitbucket, Repository, Scope, Variable
from pipe.errors import BitbucketError
from pipe.migration import KeyVariable, RepositoryScan

PIPELINE_FILE = "bitbucket-pipelines.yml"


@dataclass(frozen=True)
class WorkspaceScan:
    repositories: list[RepositoryScan]
    workspace_keys: list[KeyVariable]
    workspace_error: str | None


def scan(
    bitbucket: Bitbucket, workspace: str, *, concurrency: int, say: Callable[[str], None]
) -> WorkspaceScan:
    try:
        repositories = list(bitbucket.repositories(workspace))
    except BitbucketError as error:
        raise listing_error(workspace, error) from None
    say(f"Reading {len(repositories)} repositories of {workspace}, {concurrency} at a time.")
    workspace_keys: list[KeyVariable] = []
    workspace_error = None
    try:
        workspace_keys = _keys(bitbucket.variables(Scope(workspace)), "workspace")
    except BitbucketError as error:
        workspace_error = error.message
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="scan") as pool:
        scans = list(pool.map(lambda repo: repository(bitbucket, workspace, repo), repositories))
    return WorkspaceScan(scans, workspace_keys, workspace_error)


def repository(bitbucket: Bitbucket, workspace: str, repo: Repository) -> RepositoryScan:
    uses_oidc, pipeline_file = _pipeline(bitbucket, workspace, repo)
    keys: list[KeyVariable] = []
    error = None
    try:
        keys += _keys(bitbucket.variables(Scope(workspace, repo.slug)), "repository")
        for env in bitbucket.environments(workspace, repo.slug):
            variables = bitbucket.variables(Scope(workspace, repo.slug, env.uuid))
            keys += _keys(variables, "deployment", env.name)
    except BitbucketError as exc:
        error = exc.message
    return RepositoryScan(repo.full_name, repo.main_branch, uses_oidc, pipeline_file, tuple(keys), error)


def _pipeline(bitbucket: Bitbucket, workspace: str, repo: Repository) -> tuple[bool | None, str]:
    if not repo.main_branch:
        return None, "no main branch"
    try:
        text = bitbucket.source_file(workspace, repo.slug, repo.main_branch, PIPELINE_FILE)
    except BitbucketError as error:
        return None, f"unreadable: {error.message}"
    if text is None:
        return None, "not found"
    found = migration.uses_oidc(text)
    return found, "read" if found is not None else "unreadable: not a YAML mapping"


def _keys(variables: list[Variable], scope: str, environment: str | None = None) -> list[KeyVariable]:
    return migration.key_variables(((v.key, v.value, v.secured) for v in variables), scope, environment)


def listing_error(workspace: str, error: BitbucketError) -> BitbucketError:
    """The ✖ of a workspace that cannot be listed, naming the permission that is missing."""
    scope = "the scope repository (API tokens: read:repository:bitbucket)"
    if error.status == 404:
        hint = (
            f"Check BITBUCKET_WORKSPACE ({workspace}): no such workspace, or the credentials cannot see it. "
            f"Use a workspace access token of {workspace} with {scope} and pipeline."
        )
    elif error.status in (401, 403):
        hint = (
            f"The Bitbucket credentials need {scope} to list the repositories of {workspace}, and pipeline "
            "(read:pipeline:bitbucket) to read their variables: use a workspace access token with both."
        )
        if error.status == 401:
            hint = f"{error.hint} {hint}"
    else:
        hint = error.hint
    return BitbucketError(
        error.message, hint, status=error.status, required=error.required, granted=error.granted
    )
