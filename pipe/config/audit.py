"""The settings of ACTION=audit: whom (IAM_USERS, IAM_GROUPS, EXEMPT_GROUP), where
(AUDIT_ACCOUNT_IDS and the role assumed there), what (AUDIT_MODE and the age policy), delivery
(AUDIT_SECRET_PREFIX) and e-mail (NOTIFY_*, EMAIL_TAG, SES_REGION). Validated before any call:
revoke without IAM_USERS or IAM_GROUPS, an address that is no address, an account id that is
not 12 digits are input errors naming their variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipe.config.fields import IAM_USER, integer, region
from pipe.config.rotation import ages
from pipe.errors import InputError
from pipe.schema import default, invalid
from pipe.targets import split_list

MODES = ("report", "enforce", "revoke")
ORGANIZATION = "organization"
_GROUP = re.compile(r"\A[\w+=,.@-]{1,128}\Z", re.ASCII)
_ACCOUNT = re.compile(r"\A[0-9]{12}\Z", re.ASCII)
# A role name with its path (`path/name`); the whole ARN's resource part stays within IAM's 64+512.
_ROLE = re.compile(r"\A(?:[\w+=,.@-]+/){0,16}[\w+=,.@-]{1,64}\Z", re.ASCII)
_EXTERNAL_ID = re.compile(r"\A[\w+=,.@:/-]{2,1224}\Z", re.ASCII)
_SECRET_PREFIX = re.compile(r"\A[A-Za-z0-9/_+=.@-]{0,256}\Z", re.ASCII)
# IAM's tag key pattern, ASCII only (an e-mail tag with a non-ASCII key is not worth the risk).
_TAG_KEY = re.compile(r"\A[A-Za-z0-9 _.:/=+@-]{1,128}\Z", re.ASCII)
# An address SES takes: one @, no spaces or angle brackets, a dot in the domain. SES itself is
# the judge of the rest; this catches a name or a list given where one address is expected.
EMAIL = re.compile(r"\A[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\Z", re.ASCII)
MAX_NAMES = 1000


@dataclass(frozen=True)
class AuditSettings:
    mode: str  # report | enforce | revoke
    users: tuple[str, ...]
    groups: tuple[str, ...]
    exempt_group: str | None
    account_ids: tuple[str, ...]  # empty: the pipe's own account (unless organization)
    organization: bool
    role_name: str
    external_id: str | None
    concurrency: int
    secret_prefix: str
    notify_from: str | None
    notify_before: int
    email_tag: str
    notify_admins: tuple[str, ...]
    ses_region: str
    rotate_after: int
    deactivate_after: int
    delete_after: int

    @property
    def changes(self) -> bool:
        """The mode changes things (enforce, revoke); DRY_RUN still stops it."""
        return self.mode != "report"


def load(values: Mapping[str, str]) -> AuditSettings:
    mode = (values.get("AUDIT_MODE") or default("AUDIT_MODE")).lower()
    if mode not in MODES:
        raise invalid("AUDIT_MODE", values.get("AUDIT_MODE"))
    users = _names(values, "IAM_USERS", IAM_USER)
    groups = _names(values, "IAM_GROUPS", _GROUP)
    if mode == "revoke" and not (users or groups):
        raise InputError(
            "AUDIT_MODE",
            "AUDIT_MODE=revoke needs IAM_USERS or IAM_GROUPS: it would revoke every key of every user",
            "Set IAM_USERS or IAM_GROUPS to the users whose keys are revoked.",
        )
    exempt = values.get("EXEMPT_GROUP")
    if exempt and not _GROUP.match(exempt):
        raise invalid("EXEMPT_GROUP", exempt)
    account_ids, organization = _accounts(values.get("AUDIT_ACCOUNT_IDS"))
    role_name = values.get("AUDIT_ROLE_NAME") or default("AUDIT_ROLE_NAME")
    if not _ROLE.match(role_name):
        raise invalid("AUDIT_ROLE_NAME", role_name)
    external_id = values.get("AUDIT_EXTERNAL_ID")
    if external_id and not _EXTERNAL_ID.match(external_id):
        raise invalid("AUDIT_EXTERNAL_ID", None)  # never echoed
    prefix = values.get("AUDIT_SECRET_PREFIX") or default("AUDIT_SECRET_PREFIX")
    if not _SECRET_PREFIX.match(prefix):
        raise invalid("AUDIT_SECRET_PREFIX", prefix)
    notify_from, admins = _notification(values)
    email_tag = values.get("EMAIL_TAG") or default("EMAIL_TAG")
    if not _TAG_KEY.match(email_tag) or email_tag.lower().startswith("aws:"):
        raise invalid("EMAIL_TAG", email_tag)
    rotate_after, deactivate_after, delete_after = ages(values)
    return AuditSettings(
        mode=mode,
        users=users,
        groups=groups,
        exempt_group=exempt or None,
        account_ids=account_ids,
        organization=organization,
        role_name=role_name,
        external_id=external_id or None,
        concurrency=integer(values, "AUDIT_CONCURRENCY", 1, 32),
        secret_prefix=prefix,
        notify_from=notify_from,
        notify_before=integer(values, "NOTIFY_BEFORE_DAYS", 0, 365),
        email_tag=email_tag,
        notify_admins=admins,
        ses_region=_ses_region(values),
        rotate_after=rotate_after,
        deactivate_after=deactivate_after,
        delete_after=delete_after,
    )


def _names(values: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    text = values.get(name)
    if not text:
        return ()
    names = split_list(text, name)
    bad = [n for n in names if not pattern.match(n)]
    if bad:
        raise invalid(name, text, f"{bad[0]!r} is not a valid name")
    if len(names) > MAX_NAMES:
        raise invalid(name, None, f"{len(names)} names; at most {MAX_NAMES}")
    return tuple(dict.fromkeys(names))


def _accounts(text: str | None) -> tuple[tuple[str, ...], bool]:
    if not text:
        return (), False
    if text.strip().lower() == ORGANIZATION:
        return (), True
    ids = split_list(text, "AUDIT_ACCOUNT_IDS")
    bad = [i for i in ids if not _ACCOUNT.match(i)]
    if bad:
        raise invalid("AUDIT_ACCOUNT_IDS", text, f"{bad[0]!r} is not a 12-digit account id")
    if len(ids) > MAX_NAMES:
        raise invalid("AUDIT_ACCOUNT_IDS", None, f"{len(ids)} accounts; at most {MAX_NAMES}")
    return tuple(dict.fromkeys(ids)), False


def _notification(values: Mapping[str, str]) -> tuple[str | None, tuple[str, ...]]:
    sender = values.get("NOTIFY_FROM")
    if sender and not EMAIL.match(sender):
        raise invalid("NOTIFY_FROM", sender)
    admins_text = values.get("NOTIFY_ADMINS")
    admins = tuple(dict.fromkeys(split_list(admins_text, "NOTIFY_ADMINS"))) if admins_text else ()
    bad = [a for a in admins if not EMAIL.match(a)]
    if bad:
        raise invalid("NOTIFY_ADMINS", admins_text, f"{bad[0]!r} is not an e-mail address")
    if len(admins) > 50:  # SES takes at most 50 recipients per message
        raise invalid("NOTIFY_ADMINS", None, f"{len(admins)} addresses; SES sends to at most 50")
    if admins and not sender:
        raise InputError(
            "NOTIFY_FROM",
            "NOTIFY_ADMINS is set but NOTIFY_FROM is not: nobody would send the summary",
            "Set NOTIFY_FROM to an SES-verified sender.",
        )
    return sender or None, admins


def _ses_region(values: Mapping[str, str]) -> str:
    given = values.get("SES_REGION")
    if not given:
        return region(values)
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", given, re.ASCII):
        raise invalid("SES_REGION", given)
    return given
