"""Where a key is published. One small protocol, one class per kind:

- Bitbucket variables of a repository, a deployment environment or a workspace;
- a Secrets Manager secret or an SSM SecureString parameter (the durable stores: they hold
  the pending and the current key as JSON);
- a profile in the AWS shared credentials file (the self-service case).

``read()`` says which key id a target holds now; ``probe()`` proves the target can be written,
changing nothing (before a key is created); ``publish()`` writes a pair and returns the key id
read back (what can be read: Bitbucket returns the unsecured id variable, never the secured
secret)."""

from __future__ import annotations

import configparser
import io
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipe import files
from pipe.bitbucket import Bitbucket, Scope, Variable
from pipe.config import KeyPair, TargetSpec
from pipe.console import shown
from pipe.errors import PipeError


@dataclass(frozen=True)
class StoreState:
    current: KeyPair | None = None
    pending: KeyPair | None = None


class TargetError(PipeError):
    kind = "target"


class Target(Protocol):
    spec: TargetSpec

    def read(self) -> str | None: ...

    def probe(self) -> None: ...

    def publish(self, pair: KeyPair) -> str | None: ...


class BitbucketTarget:
    """Two variables: the key id (unsecured, so it can be read back) and the secret (secured)."""

    def __init__(self, spec: TargetSpec, client: Bitbucket, id_variable: str, secret_variable: str) -> None:
        self.spec = spec
        self.client = client
        self.id_variable = id_variable
        self.secret_variable = secret_variable
        self._scope: Scope | None = None
        self._listing: list[Variable] | None = None

    def scope(self) -> Scope:
        if self._scope is None:
            s = self.spec
            environment = ""
            if s.kind == "deployment":
                environment = self.client.environment(s.workspace, s.repo, s.environment).uuid
            self._scope = Scope(s.workspace, s.repo, environment, label=s.text)
        return self._scope

    def read(self) -> str | None:
        self._listing = self.client.variables(self.scope())
        held = next((v for v in self._listing if v.key == self.id_variable), None)
        return held.value if held else None

    def probe(self) -> None:
        """One request that changes nothing: the id variable PUT back with its own (unsecured,
        readable) value; when there is none yet, a PUT to a variable that does not exist, which
        Bitbucket answers 404 once the token's scope is checked (403 names a missing scope)."""
        scope = self.scope()
        listing = self._listing if self._listing is not None else self.client.variables(scope)
        held = next((v for v in listing if v.key == self.id_variable), None)
        if (
            held is not None
            and held.value is not None
            and self.client.update_variable(scope, held.uuid, held.key, held.value, secured=False)
        ):
            return
        absent = "{" + str(uuid.uuid4()) + "}"
        self.client.update_variable(scope, absent, self.id_variable, "probe", secured=False)

    def publish(self, pair: KeyPair) -> str | None:
        """The secret first, then the id: the id is the commit mark. A target whose id names a
        key holds that key's secret too; one interrupted between the two writes still shows the
        old id, and every recovery rewrites both variables of such targets."""
        scope = self.scope()
        listing = self._listing if self._listing is not None else self.client.variables(scope)
        self.client.upsert(
            scope, self.secret_variable, pair.secret_access_key, secured=True, existing=listing
        )
        written = self.client.upsert(
            scope, self.id_variable, pair.access_key_id, secured=False, existing=listing
        )
        self._listing = None
        return written.value


class SecretsManagerTarget:
    """A secret holding {"AccessKeyId", "SecretAccessKey"}, with Secrets Manager's own stages:
    the new key is put as AWSPENDING, then promoted to AWSCURRENT (AWS's rotation protocol)."""

    def __init__(self, spec: TargetSpec, client: Any) -> None:
        self.spec = spec
        self.client = client
        self._seen: dict[str, tuple[str, str]] = {}  # stage -> (version id, secret string) last read
        self._state_read = False

    def _version(self, stage: str) -> tuple[KeyPair | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_secret_value(SecretId=self.spec.name, VersionStage=stage)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                self._seen.pop(stage, None)
                return None, None
            raise
        if answer.get("VersionId") and answer.get("SecretString") is not None:
            self._seen[stage] = (str(answer["VersionId"]), str(answer["SecretString"]))
        try:
            data = json.loads(answer.get("SecretString") or "{}")
            return KeyPair(data["AccessKeyId"], data["SecretAccessKey"]), answer.get("VersionId")
        except (ValueError, KeyError, TypeError):
            return None, answer.get("VersionId")

    def state(self) -> StoreState:
        current, _ = self._version("AWSCURRENT")
        pending, _ = self._version("AWSPENDING")
        self._state_read = True
        return StoreState(current, pending)

    def read(self) -> str | None:
        current, _ = self._version("AWSCURRENT")
        return current.access_key_id if current else None

    def probe(self) -> None:
        """A write that changes nothing: the current version put back with its own
        ClientRequestToken and value (Secrets Manager treats that as an idempotent repeat). Only
        a version without the AWSPENDING label is put back (a version in rotation is not treated
        as a repeat). Otherwise (no secret yet, no version, a rotation pending) the secret is
        created empty, as write_pending would do, or found to exist: the first value is written
        once the key exists, and a failure there deletes the new key in the same run."""
        from botocore.exceptions import ClientError

        if not self._state_read:
            self.state()  # a version put back is a repeat however old the read: no change either way
        current, pending = self._seen.get("AWSCURRENT"), self._seen.get("AWSPENDING")
        if current is not None and (pending is None or pending[0] != current[0]):
            version, text = current
            self.client.put_secret_value(
                SecretId=self.spec.name,
                SecretString=text,
                ClientRequestToken=version,
                VersionStages=["AWSCURRENT"],
            )
            return
        try:
            self.client.create_secret(
                Name=self.spec.name, Description="AWS access key, rotated by aws-credentials-pipe"
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise

    def _document(self, pair: KeyPair) -> str:
        return json.dumps({"AccessKeyId": pair.access_key_id, "SecretAccessKey": pair.secret_access_key})

    def write_pending(self, pair: KeyPair) -> None:
        """Put ``pair`` as AWSPENDING. A new secret is created empty first: created with a
        value, that value would be AWSCURRENT before any target holds it."""
        from botocore.exceptions import ClientError

        token = f"aws-credentials-pipe-{pair.access_key_id}"
        try:
            self.client.put_secret_value(
                SecretId=self.spec.name,
                SecretString=self._document(pair),
                VersionStages=["AWSPENDING"],
                ClientRequestToken=token,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self.client.create_secret(
                Name=self.spec.name, Description="AWS access key, rotated by aws-credentials-pipe"
            )
            self.client.put_secret_value(
                SecretId=self.spec.name,
                SecretString=self._document(pair),
                VersionStages=["AWSPENDING"],
                ClientRequestToken=token,
            )

    def publish(self, pair: KeyPair) -> str | None:
        """Promote ``pair`` to AWSCURRENT (putting it first if it is not the pending version)."""
        pending, pending_version = self._version("AWSPENDING")
        current, current_version = self._version("AWSCURRENT")
        if current and current.access_key_id == pair.access_key_id:
            if pending_version is not None and pending_version == current_version:
                # The secret's first version: Secrets Manager made it AWSCURRENT as well.
                self.client.update_secret_version_stage(
                    SecretId=self.spec.name, VersionStage="AWSPENDING", RemoveFromVersionId=pending_version
                )
            return pair.access_key_id
        if not pending or pending.access_key_id != pair.access_key_id:
            self.write_pending(pair)
            pending, pending_version = self._version("AWSPENDING")
        move: dict[str, str] = {"MoveToVersionId": str(pending_version)}
        if current_version:
            move["RemoveFromVersionId"] = current_version
        self.client.update_secret_version_stage(SecretId=self.spec.name, VersionStage="AWSCURRENT", **move)
        self.client.update_secret_version_stage(
            SecretId=self.spec.name,
            VersionStage="AWSPENDING",
            RemoveFromVersionId=pending_version,
        )
        return self.read()


class SsmTarget:
    """A SecureString parameter holding {"current": {...}, "pending": {...}}."""

    def __init__(self, spec: TargetSpec, client: Any) -> None:
        self.spec = spec
        self.client = client

    def _load(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_parameter(Name=self.spec.name, WithDecryption=True)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ParameterNotFound":
                return {}
            raise
        try:
            data = json.loads(answer["Parameter"]["Value"])
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _pair(raw: Any) -> KeyPair | None:
        if isinstance(raw, dict) and raw.get("AccessKeyId") and raw.get("SecretAccessKey"):
            return KeyPair(str(raw["AccessKeyId"]), str(raw["SecretAccessKey"]))
        return None

    def state(self) -> StoreState:
        data = self._load()
        return StoreState(self._pair(data.get("current")), self._pair(data.get("pending")))

    def read(self) -> str | None:
        current = self.state().current
        return current.access_key_id if current else None

    def _save(self, current: KeyPair | None, pending: KeyPair | None) -> None:
        def raw(pair: KeyPair | None) -> dict[str, str] | None:
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
        )

    def probe(self) -> None:
        """A permission probe that changes nothing: PutParameter without Overwrite, which SSM
        refuses with ParameterAlreadyExists once the caller is authorised. A parameter that does
        not exist yet is created holding no key (``{"current": null, "pending": null}``)."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_parameter(
                Name=self.spec.name,
                Type="SecureString",
                Overwrite=False,
                Value=json.dumps({"current": None, "pending": None}),
                Description="AWS access key, rotated by aws-credentials-pipe",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ParameterAlreadyExists":
                raise

    def write_pending(self, pair: KeyPair) -> None:
        self._save(self.state().current, pair)

    def publish(self, pair: KeyPair) -> str | None:
        self._save(pair, None)
        return self.read()


class ProfileTarget:
    """A profile in the AWS shared credentials file. Other profiles are kept (comments are not:
    configparser does not keep them). Written atomically, 0600, through pipe.files (see
    ``read_profiles`` for reading)."""

    def __init__(self, spec: TargetSpec, path: Path) -> None:
        self.spec = spec
        self.path = path

    def _parser(self) -> configparser.ConfigParser:
        return read_profiles(self.path)

    def read(self) -> str | None:
        parser = self._parser()
        return parser.get(self.spec.name, "aws_access_key_id", fallback=None)

    def probe(self) -> None:
        """A permission probe: the file parses and can be rewritten (its directory, or the
        nearest one that exists, is writable; the file itself too when it exists)."""
        try:
            self._parser()
        except (configparser.Error, OSError) as exc:
            raise TargetError(
                f"{self.path} cannot be read ({type(exc).__name__})",
                "Fix the file (or point AWS_SHARED_CREDENTIALS_FILE elsewhere) and re-run.",
            ) from None
        directory = self.path.parent
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        if not os.access(directory, os.W_OK | os.X_OK) or (
            self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK)
        ):
            raise TargetError(
                f"{self.path} cannot be written (permission denied)",
                "Make the file and its directory writable, or point AWS_SHARED_CREDENTIALS_FILE elsewhere.",
            )

    def publish(self, pair: KeyPair) -> str | None:
        with _PROFILE_FILES:  # targets publish concurrently; one read-modify-write at a time
            parser = self._parser()
            if not parser.has_section(self.spec.name):
                parser.add_section(self.spec.name)
            parser.set(self.spec.name, "aws_access_key_id", pair.access_key_id)
            parser.set(self.spec.name, "aws_secret_access_key", pair.secret_access_key)
            parser.remove_option(self.spec.name, "aws_session_token")
            text = io.StringIO()
            parser.write(text)
            files.write_file(self.path, text.getvalue(), variable=PROFILE_VARIABLE, private=True)
        return self.read()


PROFILE_VARIABLE = "AWS_SHARED_CREDENTIALS_FILE"
_PROFILE_FILES = threading.Lock()


def read_profiles(path: Path) -> configparser.ConfigParser:
    """The shared credentials file, parsed. Read through pipe.files (no symlink in the path).
    A missing file has no profiles; a file that cannot be read or parsed (not UTF-8, a profile
    or a key given twice, which the AWS SDKs refuse too) is a TargetError, never read as empty:
    writing it back would drop the other profiles. Messages never quote the file's lines."""
    parser = configparser.ConfigParser(interpolation=None)
    data = files.read_file(path, variable=PROFILE_VARIABLE)
    if data is None:
        return parser

    def fail(
        problem: str, hint: str = f"Fix the file, or point {PROFILE_VARIABLE} at another one."
    ) -> TargetError:
        return TargetError(f"{PROFILE_VARIABLE} {path} {problem}", hint)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.DuplicateSectionError as exc:
        raise fail(
            f"has profile {shown(exc.section)} twice (line {exc.lineno})",
            "Merge the two sections into one: the AWS SDKs refuse such a file too.",
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise fail(
            f"has {shown(exc.option)} twice in profile {shown(exc.section)} (line {exc.lineno})",
            "Keep one of them: the AWS SDKs refuse such a file too.",
        ) from None
    except configparser.MissingSectionHeaderError as exc:
        raise fail(f"is not a credentials file (line {exc.lineno} is outside any [profile])") from None
    except configparser.ParsingError as exc:
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        raise fail(f"is not a credentials file (cannot parse line {lines})") from None
    except configparser.Error:
        raise fail("is not a credentials file") from None
    return parser
