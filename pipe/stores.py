"""The durable stores: a Secrets Manager secret or an SSM SecureString parameter. They hold the
pending and the current key, so an interrupted rotation can resume, and they are targets too
(``pipe.targets``): ``read()`` names the current key, ``publish()`` promotes a key to current.

In place of a pending key a store may hold a rotation's claim, ``{"RotationClaim": "<marker>"}``
(the pending marker's text, ``pipe.rotation.marker``, naming no key): a rotation of a user at
IAM's 50-tag quota, whose marker tag cannot be added, writes it before CreateAccessKey, so that
the next run knows a key created within that run's lifetime is the run's own. It is never a key:
``StoreState`` keeps it apart, and the pending key that the run writes next replaces it."""

# Over 300 lines: the two stores side by side (one protocol, Secrets Manager's stages against
# one SSM document), so the claim, the pending and the current key read alike in both.

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pipe.credentials import Credentials
from pipe.errors import aws_status, is_aws_code
from pipe.rotation.marker import Marker
from pipe.targets import Target, TargetSpec

if TYPE_CHECKING:
    from pipe.aws import AwsClients


CLAIM = "RotationClaim"


@dataclass(frozen=True)
class StoreState:
    current: Credentials | None = None
    pending: Credentials | None = None
    claim: Marker | None = None  # a rotation's claim in the pending slot (no key yet)


def _claim(document: Any) -> Marker | None:
    """The claim a pending slot's document holds, or None (a key, or anything else)."""
    if isinstance(document, dict) and isinstance(document.get(CLAIM), str):
        return Marker.parse(document[CLAIM])
    return None


class Store(Target, Protocol):
    """A target that also keeps a pending key beside the current one."""

    def state(self) -> StoreState: ...

    def write_pending(self, pair: Credentials) -> None: ...

    def write_claim(self, claim: Marker) -> None: ...

    def drop_claim(self, claim: Marker) -> bool: ...


class SecretsManagerStore:
    """A secret holding {"AccessKeyId", "SecretAccessKey"}, with Secrets Manager's own stages:
    the new key is put as AWSPENDING, then promoted to AWSCURRENT (AWS's rotation protocol)."""

    SERVICE = "secretsmanager"

    def __init__(self, spec: TargetSpec, aws: AwsClients, credentials: Credentials) -> None:
        self.spec = spec
        self.aws = aws
        self.client: Any = aws.client(self.SERVICE, credentials)
        self._seen: dict[str, tuple[str, str]] = {}  # stage -> (version id, secret string) last read
        self._claims: dict[str, Marker] = {}  # stage -> the claim its version holds, last read
        self._state_read = False

    def _version(self, stage: str) -> tuple[Credentials | None, str | None]:
        self._claims.pop(stage, None)
        try:
            answer = self.client.get_secret_value(SecretId=self.spec.name, VersionStage=stage)
        except Exception as exc:
            if not is_aws_code(exc, "ResourceNotFoundException"):
                raise
            self._seen.pop(stage, None)
            return None, None
        if answer.get("VersionId") and answer.get("SecretString") is not None:
            self._seen[stage] = (str(answer["VersionId"]), str(answer["SecretString"]))
        try:
            data = json.loads(answer.get("SecretString") or "{}")
        except (ValueError, TypeError):
            return None, answer.get("VersionId")
        claim = _claim(data)
        if claim is not None:
            self._claims[stage] = claim
        try:
            return Credentials(data["AccessKeyId"], data["SecretAccessKey"]), answer.get("VersionId")
        except (KeyError, TypeError):
            return None, answer.get("VersionId")

    def state(self) -> StoreState:
        """The current and the pending key. One version that is both AWSCURRENT and AWSPENDING is
        the secret's first version, put as AWSPENDING by a rotation that has not finished:
        Secrets Manager attaches AWSCURRENT to a secret's first version whatever VersionStages
        says (PutSecretValue). That key was never proven nor published, so it is pending only:
        the store holds no current key yet (promotion moves AWSPENDING off it)."""
        current, current_version = self._version("AWSCURRENT")
        pending, pending_version = self._version("AWSPENDING")
        self._state_read = True
        if current_version is not None and current_version == pending_version:
            current = None
        return StoreState(current, pending, self._claims.get("AWSPENDING"))

    def read(self) -> str | None:
        current = self.state().current
        return current.access_key_id if current else None

    def probe(self) -> None:
        """A write that changes nothing: a version put back with its own ClientRequestToken and
        value, which Secrets Manager ignores as a repeat (no staging label moves, whatever
        VersionStages says): the current version, else the pending one. A secret with no such
        version (none yet, or no string value) is created empty, as write_pending would do, or
        found to exist. A role without secretsmanager:CreateSecret (templates/rotation.yaml
        grants none) is answered AccessDenied before ResourceExists: the probe then proves
        nothing, and write_pending is the first write; its failure deletes the new key in the
        same run."""
        if not self._state_read:
            self.state()  # a version put back is a repeat however old the read: no change either way
        seen = self._seen.get("AWSCURRENT") or self._seen.get("AWSPENDING")
        if seen is not None:
            version, text = seen
            self.client.put_secret_value(
                SecretId=self.spec.name, SecretString=text, ClientRequestToken=version
            )
            return
        try:
            self._create()
        except Exception as exc:
            if not is_aws_code(exc, "AccessDeniedException"):
                raise

    def _create(self) -> None:
        """Create the secret empty; one that exists (another run's, or this call's own answered
        after a lost 500 and retried by the SDK) is what was wanted."""
        try:
            self.client.create_secret(
                Name=self.spec.name, Description="AWS access key, rotated by aws-credentials-pipe"
            )
        except Exception as exc:
            if not is_aws_code(exc, "ResourceExistsException"):
                raise

    def _document(self, pair: Credentials) -> str:
        return json.dumps({"AccessKeyId": pair.access_key_id, "SecretAccessKey": pair.secret_access_key})

    @staticmethod
    def token(pair: Credentials) -> str:
        """The ClientRequestToken, and so the version id, of ``pair``'s version: one per key, so a
        repeat (the SDK's retry after a lost answer, a rollback to an earlier key) is ignored."""
        return f"aws-credentials-pipe-{pair.access_key_id}"

    def write_pending(self, pair: Credentials) -> None:
        """Put ``pair`` as AWSPENDING. A new secret is created empty first: created with a
        value, that value would be AWSCURRENT before any target holds it. A version of ``pair``
        that exists already (a rollback to it) keeps its labels: Secrets Manager ignores the
        repeat."""
        put = {
            "SecretId": self.spec.name,
            "SecretString": self._document(pair),
            "VersionStages": ["AWSPENDING"],
            "ClientRequestToken": self.token(pair),
        }
        self._put_pending(put)

    def write_claim(self, claim: Marker) -> None:
        """Put a rotation's claim as AWSPENDING (a version of its own per run and heartbeat: a
        repeat is ignored). The pending key the run writes next takes AWSPENDING from it."""
        put = {
            "SecretId": self.spec.name,
            "SecretString": json.dumps({CLAIM: claim.tag()}),
            "VersionStages": ["AWSPENDING"],
            "ClientRequestToken": f"aws-credentials-pipe-claim-{claim.run or 'none'}-{int(claim.beat)}",
        }
        self._put_pending(put)

    def _put_pending(self, put: dict[str, Any]) -> None:
        """PutSecretValue, creating the secret first when it does not exist yet."""
        try:
            self.client.put_secret_value(**put)
        except Exception as exc:
            if not is_aws_code(exc, "ResourceNotFoundException"):
                raise
            self._create()
            self.client.put_secret_value(**put)

    def drop_claim(self, claim: Marker) -> bool:
        """Take AWSPENDING off a claim of ``claim``'s run, if the secret still holds one."""
        _, version = self._version("AWSPENDING")
        found = self._claims.get("AWSPENDING")
        if version is None or found is None or found.run != claim.run:
            return False
        self._stage(
            "AWSPENDING", lambda: self._version("AWSPENDING")[1] != version, RemoveFromVersionId=version
        )
        return True

    def publish(self, pair: Credentials) -> str | None:
        """Promote ``pair`` to AWSCURRENT (putting it first if it is not the pending version),
        then take AWSPENDING off whichever version holds it."""
        pending, pending_version = self._version("AWSPENDING")
        current, current_version = self._version("AWSCURRENT")
        if current and current.access_key_id == pair.access_key_id:
            if pending_version is not None and pending_version == current_version:
                # The secret's first version: Secrets Manager made it AWSCURRENT as well.
                first = pending_version
                self._stage(
                    "AWSPENDING", lambda: self._version("AWSPENDING")[1] != first, RemoveFromVersionId=first
                )
            return pair.access_key_id
        version = pending_version
        if not pending or pending.access_key_id != pair.access_key_id:
            # The pair's own version: new, or (a rollback) an existing one the put leaves as it was.
            self.write_pending(pair)
            version = self.token(pair)
            pending, pending_version = self._version("AWSPENDING")
            current, current_version = self._version("AWSCURRENT")
        if current_version != version:  # else the secret's first version: AWSCURRENT already
            move: dict[str, str] = {"MoveToVersionId": str(version)}
            if current_version:
                move["RemoveFromVersionId"] = current_version
            self._stage("AWSCURRENT", lambda: self._version("AWSCURRENT")[1] == version, **move)
        if pending_version is not None:
            pending_from = pending_version
            self._stage(
                "AWSPENDING",
                lambda: self._version("AWSPENDING")[1] != pending_from,
                RemoveFromVersionId=pending_from,
            )
        return self.read()

    def _stage(self, stage: str, done: Callable[[], bool], **move: str) -> None:
        """Move ``stage``. The SDK retries a 500: when the first attempt moved the label, the
        retry is refused (InvalidParameterException: the label is no longer where it says);
        the move is then done if ``done()`` reads it so."""
        try:
            self.client.update_secret_version_stage(SecretId=self.spec.name, VersionStage=stage, **move)
        except Exception as exc:
            if not (is_aws_code(exc, "InvalidParameterException") and aws_status(exc)[1] and done()):
                raise

    def sign_with(self, credentials: Credentials) -> None:
        """Sign every later call with ``credentials`` (the self-service switch)."""
        self.client = self.aws.client(self.SERVICE, credentials)


class SsmStore:
    """A SecureString parameter holding {"current": {...}, "pending": {...}}, encrypted with
    ``kms_key_id`` (STORE_KMS_KEY_ID), else aws/ssm. Every PutParameter sends the key: SSM
    encrypts a SecureString that PutParameter names no KeyId for with the account's default key,
    aws/ssm, on an overwrite too, whatever key encrypted the parameter before (PutParameter's
    KeyId: "If you don't specify a key ID, the system uses the default key"). The pipe does not
    read the parameter's key to keep it: only DescribeParameters says it, on every parameter
    of the account and region (no resource to scope it), which the rotating role is not granted."""

    SERVICE = "ssm"

    def __init__(
        self, spec: TargetSpec, aws: AwsClients, credentials: Credentials, kms_key_id: str | None = None
    ) -> None:
        self.spec = spec
        self.aws = aws
        self.client: Any = aws.client(self.SERVICE, credentials)
        self._key: dict[str, str] = {"KeyId": kms_key_id} if kms_key_id else {}

    def _load(self) -> dict[str, Any]:
        try:
            answer = self.client.get_parameter(Name=self.spec.name, WithDecryption=True)
        except Exception as exc:
            if not is_aws_code(exc, "ParameterNotFound"):
                raise
            return {}
        try:
            data = json.loads(answer["Parameter"]["Value"])
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _pair(raw: Any) -> Credentials | None:
        if isinstance(raw, dict) and raw.get("AccessKeyId") and raw.get("SecretAccessKey"):
            return Credentials(str(raw["AccessKeyId"]), str(raw["SecretAccessKey"]))
        return None

    def state(self) -> StoreState:
        data = self._load()
        pending = data.get("pending")
        return StoreState(self._pair(data.get("current")), self._pair(pending), _claim(pending))

    def read(self) -> str | None:
        current = self.state().current
        return current.access_key_id if current else None

    def _save(self, current: Credentials | None, pending: Credentials | Marker | None) -> None:
        def raw(pair: Credentials | Marker | None) -> dict[str, str] | None:
            if isinstance(pair, Marker):
                return {CLAIM: pair.tag()}
            return (
                {"AccessKeyId": pair.access_key_id, "SecretAccessKey": pair.secret_access_key}
                if pair
                else None
            )

        self.client.put_parameter(
            Name=self.spec.name,
            Type="SecureString",
            Overwrite=True,
            Value=json.dumps({"current": raw(current), "pending": raw(pending)}),
            **self._key,
        )

    def probe(self) -> None:
        """A permission probe that changes nothing: PutParameter without Overwrite, which SSM
        refuses with ParameterAlreadyExists once the caller is authorised. A parameter that does
        not exist yet is created holding no key (``{"current": null, "pending": null}``)."""
        try:
            self.client.put_parameter(
                Name=self.spec.name,
                Type="SecureString",
                Overwrite=False,
                Value=json.dumps({"current": None, "pending": None}),
                Description="AWS access key, rotated by aws-credentials-pipe",
                **self._key,
            )
        except Exception as exc:
            if not is_aws_code(exc, "ParameterAlreadyExists"):
                raise

    def write_pending(self, pair: Credentials) -> None:
        self._save(self.state().current, pair)

    def write_claim(self, claim: Marker) -> None:
        """Put a rotation's claim in the pending slot (the pending key written next replaces it)."""
        self._save(self.state().current, claim)

    def drop_claim(self, claim: Marker) -> bool:
        """Empty the pending slot if it still holds a claim of ``claim``'s run."""
        state = self.state()
        if state.claim is None or state.claim.run != claim.run:
            return False
        self._save(state.current, None)
        return True

    def publish(self, pair: Credentials) -> str | None:
        self._save(pair, None)
        return self.read()

    def sign_with(self, credentials: Credentials) -> None:
        """Sign every later call with ``credentials`` (the self-service switch)."""
        self.client = self.aws.client(self.SERVICE, credentials)
