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
        return build_store(spec, clients.aws, credentials, settings.store_kms_key_id)
    if spec.kind == "profile":
        from pipe.profile import ProfileTarget

        return ProfileTarget(spec, settings.credentials_file)
    bitbucket = clients.bitbucket()
    assert bitbucket is not None  # config requires Bitbucket access for Bitbucket targets
    return BitbucketTarget(spec, bitbucket, settings.id_variable, settings.secret_variable)


def build_store(spec: TargetSpec, aws: AwsClients, credentials: Credentials, kms_key_id: str | None) -> Store:
    """The durable store ``spec`` names (secretsmanager: or ssm:). ``kms_key_id``
    (STORE_KMS_KEY_ID) encrypts an SSM parameter; a secret keeps the key it was created with."""
    from pipe.stores import SecretsManagerStore, SsmStore

    assert spec.is_store
    if spec.kind == "secretsmanager":
        return SecretsManagerStore(spec, aws, credentials)
    return SsmStore(spec, aws, credentials, kms_key_id)
