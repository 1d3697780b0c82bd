"""Builds the boto3 clients the actions are given. The only place that knows SDK settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipe import __version__


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (self.secret_access_key, self.session_token) if v)


# Attempts in all (the first one included) of botocore's `standard` retry mode, for every
# call: its default, and the AWS SDKs' common one. It covers throttling, 5xx, connection
# errors and STS's IDPCommunicationError with jittered exponential backoff (up to 1 s, then
# 2 s) and a retry quota: enough for a blip to clear; more attempts mostly add load during an
# outage. RETRY_TIMEOUT_SECONDS does not change it; it only lets `pipe.retry.IdpRetries` go on
# past these attempts for IDPCommunicationError, within the same loop.
SDK_MAX_ATTEMPTS = 3


class AwsClients:
    """One SDK session (its loader cache is shared), clients made on demand.

    Retries: the SDK's ``standard`` mode (``SDK_MAX_ATTEMPTS``) for every call; on STS's
    AssumeRoleWithWebIdentity, ``pipe.retry.IdpRetries`` extends it for IDPCommunicationError
    until ``retry_timeout`` seconds have passed (0: not at all).
    """

    def __init__(self, region: str, endpoints: Mapping[str, str], retry_timeout: int) -> None:
        # botocore's session, not boto3's: boto3 adds nothing for plain clients but imports
        # s3transfer (about 28 ms of every run's start-up, measured in the image).
        import botocore.session
        from botocore.config import Config

        self._session = botocore.session.get_session()
        self._session.set_config_variable("sts_regional_endpoints", "regional")
        self.region = region
        self.endpoints = dict(endpoints)
        self.retry_timeout = retry_timeout
        per_call = max(1, min(retry_timeout, 10)) if retry_timeout else 10
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": SDK_MAX_ATTEMPTS},
            connect_timeout=min(per_call, 5),
            read_timeout=per_call,
            user_agent_extra=f"aws-credentials-pipe/{__version__}",
        )

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        """A client for ``service``; unsigned when ``credentials`` is None (web identity)."""
        from botocore import UNSIGNED
        from botocore.config import Config

        config = self._config
        keys: dict[str, str | None] = {}
        if credentials is None:
            config = config.merge(Config(signature_version=UNSIGNED))
        else:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
        client = self._session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoints.get(service),
            config=config,
            **keys,
        )
        if service == "sts" and self.retry_timeout:
            from pipe.retry import IdpRetries

            IdpRetries(self.retry_timeout).register(client, "AssumeRoleWithWebIdentity")
        return client
