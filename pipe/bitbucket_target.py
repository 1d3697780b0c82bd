"""A Bitbucket variables target: the key id and the secret as pipeline variables of a repository,
a deployment environment or a workspace (``pipe.targets`` has the grammar and the protocol)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from pipe.errors import TargetError
from pipe.targets import TargetSpec

if TYPE_CHECKING:
    from pipe.bitbucket import Bitbucket, Scope, Variable
    from pipe.credentials import Credentials


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
