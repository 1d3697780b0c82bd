"""The clients the actions are given: the AWS SDK's (the only place that knows SDK settings)
and Bitbucket's API client, made on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pipe import __version__
from pipe.retry import SDK_MAX_ATTEMPTS, IdpRetries

if TYPE_CHECKING:
    from pipe.bitbucket import Bitbucket
    from pipe.config import Settings
    from pipe.console import Console
    from pipe.credentials import Credentials
    from pipe.network import Network


class AwsClients:
    """One SDK session (its loader cache is shared), clients made on demand.

    Retries: the SDK's ``standard`` mode (``SDK_MAX_ATTEMPTS``) for every call; on STS's
    AssumeRoleWithWebIdentity, ``pipe.retry.IdpRetries`` extends it for IDPCommunicationError
    until ``retry_timeout`` seconds have passed (0: not at all).
    """

    def __init__(
        self,
        region: str,
        endpoints: Mapping[str, str],
        retry_timeout: int,
        network: Network | None = None,
    ) -> None:
        # botocore's session, not boto3's: boto3 adds nothing for plain clients but imports
        # s3transfer (about 28 ms of every run's start-up, measured in the image).
        import botocore.session
        from botocore.config import Config

        self._session = botocore.session.get_session()
        self._session.set_config_variable("sts_regional_endpoints", "regional")
        self.region = region
        self.endpoints = dict(endpoints)
        self.retry_timeout = retry_timeout
        self.network = network
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
        client = self._create(service, config, keys)
        if service == "sts" and self.retry_timeout:
            IdpRetries(self.retry_timeout).register(client, "AssumeRoleWithWebIdentity")
        if service == "iam":  # ConcurrentModification (pipe.retry.RETRIED_TOO), on every call
            IdpRetries(0).register(client)
        return client

    def _create(self, service: str, config: Any, keys: Mapping[str, str | None]) -> Any:
        """The SDK's client, with the proxies and the CA bundle given explicitly (never left to
        botocore's reading of the environment). A proxy depends on the endpoint's URL, which
        botocore resolves: when NO_PROXY names it, the client is made again without proxies."""
        network = self.network
        extra: dict[str, Any] = dict(keys)
        if network is not None and network.ca_bundle:
            extra["verify"] = network.ca_bundle
        if network is None or not network.proxied:
            return self._session.create_client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoints.get(service),
                config=config,
                **extra,
            )
        from botocore.config import Config

        proxies = {"http": network.http_proxy, "https": network.https_proxy}
        client = self._session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoints.get(service),
            config=config.merge(Config(proxies=proxies)),
            **extra,
        )
        if network.bypass(client.meta.endpoint_url):
            client = self._session.create_client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoints.get(service),
                config=config.merge(Config(proxies={"http": None, "https": None})),
                **extra,
            )
        return client


class Clients:
    """What every action is given: ``aws`` (AwsClients), and ``bitbucket()``, Bitbucket's API
    client, made on the first call (None when no Bitbucket access is configured)."""

    def __init__(self, aws: AwsClients, bitbucket: Callable[[], Bitbucket | None] = lambda: None) -> None:
        self.aws = aws
        self._make_bitbucket = bitbucket
        self._bitbucket: Bitbucket | None = None
        self._made = False

    @classmethod
    def for_settings(cls, settings: Settings, console: Console) -> Clients:
        def bitbucket() -> Bitbucket | None:
            if not settings.bitbucket_auth:
                return None
            from pipe.bitbucket import Bitbucket, auth_from

            auth, warning = auth_from(settings.bitbucket_auth)
            if warning:
                console.warning(warning)
            rotation = settings.rotation
            pool = max(rotation.concurrency if rotation else 4, 4)
            if settings.check.scope == "workspace":
                pool = max(pool, settings.check.concurrency)
            return Bitbucket(settings.bitbucket_url, auth, pool_size=pool, network=settings.network)

        if settings.network is not None:
            console.info(settings.network.describe())
        aws = AwsClients(settings.region, settings.endpoints, settings.retry_timeout, settings.network)
        return cls(aws, bitbucket)

    def bitbucket(self) -> Bitbucket | None:
        if not self._made:
            self._bitbucket = self._make_bitbucket()
            self._made = True
        return self._bitbucket
