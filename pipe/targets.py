"""Where a key is published: the grammar of TARGETS (and SOURCE, STORE), one small protocol,
one factory, and the Bitbucket variables target.

Kinds: Bitbucket variables of a repository, a deployment environment or a workspace (here);
a Secrets Manager secret or an SSM SecureString parameter (the durable stores, ``pipe.stores``);
a profile in the AWS shared credentials file (``pipe.profile``).

``read()`` says which key id a target holds now; ``probe()`` proves the target can be written,
changing nothing (before a key is created); ``publish()`` writes a pair and returns the key id
read back (what can be read: Bitbucket returns the unsecured id variable, never the secured
secret); ``sign_with()`` makes a target that calls AWS sign with other credentials from then on
(the self-service switch).

The grammar is on every run's start-up path (config reads it): nothing here imports the
Bitbucket client or the stores at module level."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pipe.console import shown
from pipe.errors import TargetError
from pipe.schema import DEFAULT_STORE_PREFIX, invalid

if TYPE_CHECKING:
    from pipe.aws import AwsClients, Clients
    from pipe.bitbucket import Bitbucket, Scope, Variable
    from pipe.config.rotation import RotationSettings
    from pipe.credentials import Credentials
    from pipe.stores import Store

STORE_KINDS = ("secretsmanager", "ssm")
BITBUCKET_KINDS = ("repository", "deployment", "workspace")
# A profile name in the AWS shared files; configparser keeps [DEFAULT] for defaults of every
# section (botocore too): not a profile.
PROFILE_NAME = re.compile(r"\A[\w+=,.@-]{1,64}\Z", re.ASCII)
NOT_A_PROFILE = "DEFAULT"
# Bitbucket workspace ids and repository slugs (letters, digits, - _ . and ~), or a {uuid};
# "." and ".." are refused apart: quoted into an API path they would name another resource.
_SLUG = re.compile(r"\A(?:[A-Za-z0-9_.~-]{1,128}|\{[0-9A-Fa-f-]{36}\})\Z", re.ASCII)
_ENVIRONMENT = re.compile(r"\A[^\x00-\x1f\x7f]{1,255}\Z")
# Secrets Manager names/ARNs: what the service accepts.
_SECRET_ID = re.compile(r"\A[A-Za-z0-9/_+=.@:-]{1,2048}\Z", re.ASCII)
# SSM parameter names (or their ARN): a-zA-Z0-9_.- and /, a name with a / fully qualified, and
# never starting with aws or ssm, case-insensitive (SSM's "Requirements and constraints for
# parameter names": those are refused, or AWS's own).
_SSM_NAME = re.compile(r"\A[A-Za-z0-9/_.-]{1,2048}\Z", re.ASCII)
_SSM_ARN = re.compile(r"\Aarn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter(/.+)\Z", re.ASCII)
_SSM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


@dataclass(frozen=True)
class TargetSpec:
    """One entry of TARGETS (or SOURCE, STORE), parsed."""

    kind: str  # repository | deployment | workspace | secretsmanager | ssm | profile
    text: str
    workspace: str = ""
    repo: str = ""
    environment: str = ""
    name: str = ""  # secret id, parameter name or profile name

    @property
    def is_store(self) -> bool:
        return self.kind in STORE_KINDS

    @property
    def is_bitbucket(self) -> bool:
        return self.kind in BITBUCKET_KINDS


# -- the grammar ----------------------------------------------------------------------------
def is_profile_name(text: str) -> bool:
    return bool(PROFILE_NAME.match(text)) and text != NOT_A_PROFILE


def _slug(text: str) -> bool:
    """A workspace id or repository slug: never "." or "..", which quoted into an API path
    (/repositories/acme/..) would name another resource."""
    return bool(_SLUG.match(text)) and text.strip(".") != ""


def is_ssm_parameter(text: str) -> bool:
    """An SSM parameter name, or its ARN, that SSM would accept for PutParameter."""
    arn = _SSM_ARN.match(text)
    name = arn.group(1) if arn else text
    if not _SSM_NAME.match(name) or ("/" in name and not name.startswith("/")):
        return False
    return not name.removeprefix("/").lower().startswith(("aws", "ssm"))


def parse_target(text: str, variable: str = "TARGETS") -> TargetSpec:
    text = text.strip()
    prefix, _, rest = text.partition(":")
    if prefix in ("secretsmanager", "ssm", "profile") and rest:
        if prefix == "profile" and not is_profile_name(rest):
            raise invalid(variable, text, "a profile name has no spaces or brackets, and is not DEFAULT")
        if prefix == "secretsmanager" and not _SECRET_ID.match(rest):
            raise invalid(variable, text, "not a valid secretsmanager name")
        if prefix == "ssm" and not is_ssm_parameter(rest):
            raise invalid(
                variable,
                text,
                "not a valid ssm name (letters, digits, _ . - and /; a path starts with /; "
                "never starting with aws or ssm)",
            )
        return TargetSpec(prefix, text, name=rest)
    if ":" in text:
        raise invalid(variable, text, f"unknown kind {shown(prefix)}")
    place, _, environment = text.partition("@")
    workspace, slash, repo = place.partition("/")
    if (
        not _slug(workspace)
        or (slash and not _slug(repo))
        or ("@" in text and not (repo and _ENVIRONMENT.match(environment)))
    ):
        raise invalid(variable, text)
    if environment:
        return TargetSpec("deployment", text, workspace, repo, environment)
    return TargetSpec("repository" if repo else "workspace", text, workspace, repo)


def split_list(value: str, variable: str = "TARGETS") -> list[str]:
    """Comma or space separated, or a YAML list (``[a, b]`` or ``- a`` lines) of plain values.
    A list that nests (``[[...`` thousands deep: RecursionError in the parser; aliases that
    expand a few lines into millions of items) is refused, not flattened."""
    stripped = value.strip()
    if stripped.startswith(("[", "- ")):
        import yaml

        try:
            loaded = yaml.safe_load(stripped)
        except (yaml.YAMLError, RecursionError):
            loaded = None
        if isinstance(loaded, list):
            if any(isinstance(item, list | dict) for item in loaded):
                raise invalid(variable, value, "a YAML list of plain values, not of lists or mappings")
            return [str(item).strip() for item in loaded if item is not None and str(item).strip()]
    return [part for part in re.split(r"[\s,]+", stripped) if part]


def default_store_name(user: str) -> str:
    """``/bitbucket-pipes/aws-credentials-pipe/<user>``, with the user name escaped to what SSM
    allows in a name (``a-zA-Z0-9_.-``): ``_`` becomes ``__`` and any other character ``_XX``
    per UTF-8 byte (``@`` is ``_40``), so two users never share a parameter. SSM reserves
    names whose first segment starts with ``aws`` (``/aws-credentials-pipe/...`` is refused)."""
    out = []
    for char in user:
        if char in _SSM_SAFE:
            out.append(char)
        elif char == "_":
            out.append("__")
        else:
            out.extend(f"_{byte:02X}" for byte in char.encode())
    return DEFAULT_STORE_PREFIX + "".join(out)


def default_store(user: str) -> TargetSpec:
    name = default_store_name(user)
    return TargetSpec("ssm", f"ssm:{name}", name=name)


# -- the protocol and the factory -----------------------------------------------------------
class Target(Protocol):
    spec: TargetSpec

    def read(self) -> str | None: ...

    def probe(self) -> None: ...

    def publish(self, pair: Credentials) -> str | None: ...

    def sign_with(self, credentials: Credentials) -> None: ...


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


# -- Bitbucket variables ---------------------------------------------------------------------
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
        from pipe.bitbucket import Scope

        if self._scope is None:
            s = self.spec
            environment = ""
            if s.kind == "deployment":
                environment = self.client.environment(s.workspace, s.repo, s.environment).uuid
            self._scope = Scope(s.workspace, s.repo, environment, label=s.text)
        return self._scope

    def read(self) -> str | None:
        self._listing = self.client.variables(self.scope())
        held = self._held(self._listing)
        return held.value if held else None

    def _held(self, listing: list[Variable]) -> Variable | None:
        """The id variable; a secured one stops the run: Bitbucket never returns a secured
        value, so which key the target holds cannot be known (and a write cannot be read back)."""
        held = next((v for v in listing if v.key == self.id_variable), None)
        if held is not None and held.secured:
            raise self._secured_id()
        return held

    def _secured_id(self, written: bool = False) -> TargetError:
        what = (
            "came back secured after it was written, so the new id cannot be read back"
            if written
            else "is secured, and Bitbucket never returns a secured value, so the pipe cannot tell "
            "which key this target holds nor read a new id back; nothing was changed here"
        )
        return TargetError(
            f"{self.spec.text}: its key id variable {self.id_variable} (ACCESS_KEY_ID_VARIABLE) {what}",
            f"Delete the secured variable {self.id_variable} in {self.spec.text}, or re-create it "
            "unsecured (a key id is not a secret), or set ACCESS_KEY_ID_VARIABLE to another name.",
        )

    def probe(self) -> None:
        """One request that changes nothing: the id variable PUT back with its own (unsecured,
        readable) value; when there is none yet, a PUT to a variable that does not exist, which
        Bitbucket answers 404 once the token's scope is checked (403 names a missing scope). A
        secured id variable stops the run here, before any key is created."""
        scope = self.scope()
        listing = self._listing if self._listing is not None else self.client.variables(scope)
        held = self._held(listing)
        if (
            held is not None
            and held.value is not None
            and self.client.update_variable(scope, held.uuid, held.key, held.value, secured=False)
        ):
            return
        absent = "{" + str(uuid.uuid4()) + "}"
        self.client.update_variable(scope, absent, self.id_variable, "probe", secured=False)

    def publish(self, pair: Credentials) -> str | None:
        """The secret first, then the id: the id is the commit mark. A target whose id names a
        key holds that key's secret too; one interrupted between the two writes still shows the
        old id, and every recovery rewrites both variables of such targets. An id that comes
        back secured (someone secured it since it was read) is a failure: it cannot be read."""
        scope = self.scope()
        listing = self._listing if self._listing is not None else self.client.variables(scope)
        self._held(listing)
        self.client.upsert(
            scope, self.secret_variable, pair.secret_access_key, secured=True, existing=listing
        )
        written = self.client.upsert(
            scope, self.id_variable, pair.access_key_id, secured=False, existing=listing
        )
        self._listing = None
        if written.secured:
            raise self._secured_id(written=True)
        return written.value

    def sign_with(self, credentials: Credentials) -> None:
        """No AWS call here: nothing to switch."""
