"""The one factory: the target a TARGETS (or SOURCE, STORE) entry names, of whichever kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipe.bitbucket_target import BitbucketTarget
from pipe.targets import Target, TargetSpec

if TYPE_CHECKING:
    from pipe.aws import AwsClients, Clients
    from pipe.config.rotation import RotationSettings
    from pipe.credentials import Credentials
    from pipe.stores import Store


def build(spec: TargetSpec, settings: RotationSettings, clients: Clients, credentials: Credentials) -> Target:
    """The target ``spec`` names. AWS calls are signed with ``credentials`` (the run's own)."""
    if spec.is_store:
        return build_store(spec, clients.aws, credentials)
    if spec.kind == "profile":
        from pipe.profile import ProfileTarget

        return ProfileTarget(spec, settings.credentials_file)
    bitbucket = clients.bitbucket()
    assert bitbucket is not None  # config requires Bitbucket access for Bitbucket targets
    return BitbucketTarget(spec, bitbucket, settings.id_variable, settings.secret_variable)


def build_store(spec: TargetSpec, aws: AwsClients, credentials: Credentials) -> Store:
    """The durable store ``spec`` names (secretsmanager: or ssm:)."""
    from pipe.stores import SecretsManagerStore, SsmStore

    assert spec.is_store
    kind = SecretsManagerStore if spec.kind == "secretsmanager" else SsmStore
    return kind(spec, aws, credentials)
