"""All stand-ins together, with the helpers tests, `make demo` and `make bench` share."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from tests.standins import registry
from tests.standins.aws import ACCOUNT, AwsStandIn
from tests.standins.bitbucket import BitbucketStandIn
from tests.standins.interrupt import Interrupter
from tests.standins.issuer import Issuer, braced

REGION = "eu-west-1"
WORKSPACE = "acme"
REPO_SLUG = "shop"


class Sandbox:
    def __init__(self) -> None:
        self.bitbucket = BitbucketStandIn().start()
        self.issuer = self.bitbucket.add_issuer(WORKSPACE)
        self.aws = AwsStandIn(resolve_url=self.bitbucket.resolve).start()
        self.iam = self.aws.client("iam", region="us-east-1")
        self.repo_uuid = braced()
        self.provider_arn = ""
        self.interrupter = Interrupter()
        self.aws.interrupter = self.interrupter
        self.bitbucket.interrupter = self.interrupter

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.aws.stop()
        self.bitbucket.stop()

    # -- AWS side --------------------------------------------------------------------
    def add_oidc_provider(self, audiences: list[str] | None = None, issuer: Issuer | None = None) -> str:
        """Register the issuer in IAM (idempotent: moto's state is shared by every Sandbox of a process)."""
        issuer = issuer or self.issuer
        arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.provider}"
        client_ids = audiences if audiences is not None else [issuer.audience]
        try:
            self.iam.create_open_id_connect_provider(
                Url=issuer.url, ClientIDList=client_ids, ThumbprintList=["0" * 40]
            )
        except self.iam.exceptions.EntityAlreadyExistsException:
            self.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            self.iam.create_open_id_connect_provider(
                Url=issuer.url, ClientIDList=client_ids, ThumbprintList=["0" * 40]
            )
        self.provider_arn = arn
        return arn

    def trust_policy(
        self,
        sub: str | None = None,
        aud: str | None = None,
        operator: str = "StringLike",
        issuer: Issuer | None = None,
    ) -> dict[str, Any]:
        issuer = issuer or self.issuer
        provider = issuer.provider
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{provider}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{provider}:aud": aud or issuer.audience},
                        operator: {f"{provider}:sub": sub or f"{self.repo_uuid}:*"},
                    },
                }
            ],
        }

    def add_role(self, name: str, policy: dict[str, Any] | None = None, max_session: int = 3600) -> str:
        document = json.dumps(policy or self.trust_policy())
        try:
            answer = self.iam.create_role(
                RoleName=name, AssumeRolePolicyDocument=document, MaxSessionDuration=max_session
            )
        except self.iam.exceptions.EntityAlreadyExistsException:
            self.iam.update_assume_role_policy(RoleName=name, PolicyDocument=document)
            self.iam.update_role(RoleName=name, MaxSessionDuration=max_session)
            answer = self.iam.get_role(RoleName=name)
        return str(answer["Role"]["Arn"])

    def add_user_key(self, user: str) -> tuple[str, str]:
        with contextlib.suppress(self.iam.exceptions.EntityAlreadyExistsException):
            self.iam.create_user(UserName=user)
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        registry.record(key["SecretAccessKey"])
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def add_user(self, user: str, keys: int = 1) -> list[tuple[str, str]]:
        return [self.add_user_key(user) for _ in range(keys)]

    # -- several accounts (ACTION=audit) -----------------------------------------------
    def member_account(
        self,
        account: str | None = None,
        *,
        trusted: str,
        role_name: str = "aws-credentials-audit",
        external_id: str | None = None,
    ) -> str:
        """An account (a fresh random id unless given) with the audit role, trusting ``trusted``
        (an ARN), with ``sts:ExternalId`` when given. The account id."""
        account = account or fresh_account()
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": trusted},
            "Action": "sts:AssumeRole",
        }
        if external_id:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        self.account_iam(account).create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )
        return account

    def account_iam(self, account: str) -> Any:
        return self.aws.account_client("iam", account, region="us-east-1")

    def account_user(
        self,
        account: str,
        user: str,
        *,
        keys: int = 1,
        tags: dict[str, str] | None = None,
        groups: tuple[str, ...] = (),
    ) -> list[str]:
        """A user in ``account`` with ``keys`` access keys (their secrets recorded for the leak
        check), tags and groups (created when missing). The key ids."""
        iam = self.account_iam(account)
        extra = {"Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]} if tags else {}
        iam.create_user(UserName=user, **extra)
        for group in groups:
            with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
                iam.create_group(GroupName=group)
            iam.add_user_to_group(GroupName=group, UserName=user)
        ids = []
        for _ in range(keys):
            key = iam.create_access_key(UserName=user)["AccessKey"]
            registry.record(key["SecretAccessKey"])
            ids.append(str(key["AccessKeyId"]))
        return ids

    def organization_account(self, *, trusted: str, role_name: str = "aws-credentials-audit") -> str:
        """A new account of the organization of ACCOUNT (created once), with the audit role."""
        org = self.aws.client("organizations", region="us-east-1")
        with contextlib.suppress(org.exceptions.AlreadyInOrganizationException):
            org.create_organization(FeatureSet="ALL")
        created = org.create_account(Email=f"{fresh_account()}@example.com", AccountName="member")
        account = str(created["CreateAccountStatus"]["AccountId"])
        return self.member_account(account, trusted=trusted, role_name=role_name)

    def verify_sender(self, address: str, region: str = REGION) -> None:
        """An SES identity in ACCOUNT (moto: verified at once)."""
        ses = self.aws.client("sesv2", region=region)
        with contextlib.suppress(ses.exceptions.AlreadyExistsException):
            ses.create_email_identity(EmailIdentity=address)

    def bitbucket_token(self, *scopes: str) -> str:
        return self.bitbucket.access_token(*(scopes or ("pipeline", "pipeline:variable")))

    def token(self, **kwargs: Any) -> str:
        return self.issuer.mint(self.repo_uuid, **kwargs)

    # -- the step --------------------------------------------------------------------
    def step_env(self, clone_dir: Path, *, token: str | None = None, **variables: str) -> dict[str, str]:
        """The environment Pipelines gives a pipe: the pipe's variables plus BITBUCKET_*."""
        env = {
            "BITBUCKET_CLONE_DIR": str(clone_dir),
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR": str(
                clone_dir / ".bitbucket/pipelines/generated/pipeline/pipes"
            ),
            "BITBUCKET_PIPE_STORAGE_DIR": str(
                clone_dir / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials-pipe"
            ),
            "BITBUCKET_REPO_SLUG": REPO_SLUG,
            "BITBUCKET_REPO_FULL_NAME": f"{WORKSPACE}/{REPO_SLUG}",
            "BITBUCKET_WORKSPACE": WORKSPACE,
            "BITBUCKET_REPO_UUID": self.repo_uuid,
            "BITBUCKET_BUILD_NUMBER": "42",
            "BITBUCKET_BRANCH": "main",
            "BITBUCKET_COMMIT": "0" * 40,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.aws.url,
        }
        if token:
            env["BITBUCKET_STEP_OIDC_TOKEN"] = token
        env.update(variables)
        return env


def fresh_account() -> str:
    """A random 12-digit account id (moto creates an account on its first use)."""
    return f"{random.randrange(10**11, 10**12)}"


def base_process_env(home: Path) -> dict[str, str]:
    """A clean environment for a child process: nothing of the caller's AWS_* or BITBUCKET_*."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }
