"""SSM SecureString parameters and their KMS key, as AWS has them and moto does not quite.

- PutParameter's ``KeyId`` must name a KMS key of the caller's account in the parameter's
  region (a key id, key ARN, ``alias/<name>`` or alias ARN; ``alias/aws/ssm`` is the account's
  default key): SSM answers ``InvalidKeyId`` otherwise. moto stores any string.
- A SecureString written without ``KeyId`` is encrypted with the default key, ``aws/ssm``, an
  overwrite of a parameter encrypted with another key too (PutParameter's KeyId: "If you don't
  specify a key ID, the system uses the default key"). moto keeps the previous version's key,
  so a write that drops the key would go unnoticed: ``default_key_on_overwrite`` puts it right.
- ``key_arn`` resolves a KeyId to the key's ARN, what IAM authorises the KMS calls SSM makes for
  the caller against (``tests/standins/calls.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.standins.servicemodel import Call

DEFAULT_KEY = "alias/aws/ssm"


def key_arn(account: str, region: str, key_id: str) -> str | None:
    """The ARN of the customer-managed key ``key_id`` names in ``account`` and ``region``; None
    when it names none there (or names the default key)."""
    from moto.kms.models import kms_backends

    if key_id in (DEFAULT_KEY, "") or key_id.endswith(f":{DEFAULT_KEY}"):
        return None
    backend = kms_backends[account][region]
    try:
        return str(backend.describe_key(key_id).arn)
    except (KeyError, AttributeError, TypeError):  # moto's answers for a name it does not know
        return None


def parameter_key(account: str, region: str, name: str) -> str | None:
    """The KeyId a SecureString parameter was last written with (None: no such parameter)."""
    from moto.ssm.models import ssm_backends

    versions = ssm_backends[account][region]._parameters.get(name)
    if not versions or versions[-1].parameter_type != "SecureString":
        return None
    return str(versions[-1].keyid or DEFAULT_KEY)


def unknown_key(call: Call, account: str) -> tuple[str, str] | None:
    """(code, message) of SSM's refusal of a PutParameter whose KeyId names no key."""
    key_id = str(call.params.get("KeyId") or "")
    if call.operation.name != "PutParameter" or not key_id or key_id == DEFAULT_KEY:
        return None
    if key_arn(account, call.region, key_id) is not None:
        return None
    return "InvalidKeyId", f"Key '{key_id}' does not exist (Service: AWSKMS; Error Code: NotFoundException)"


def default_key_on_overwrite(call: Call, account: str) -> None:
    """After a PutParameter without KeyId that moto accepted: the parameter's newest version is
    encrypted with aws/ssm, whatever key the version before had."""
    from moto.ssm.models import ssm_backends

    if call.operation.name != "PutParameter" or call.params.get("KeyId"):
        return
    versions: Any = ssm_backends[account][call.region]._parameters.get(str(call.params.get("Name", "")))
    if not versions or versions[-1].parameter_type != "SecureString":
        return
    newest = versions[-1]
    if newest.keyid == DEFAULT_KEY:
        return
    value = newest.decrypt(newest.value)
    newest.keyid = DEFAULT_KEY
    newest.value = newest.encrypt(value)
