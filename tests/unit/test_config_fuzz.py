"""Every value of every variable ends as valid settings or as an InputError naming a variable,
never as another exception ("Unexpected internal error"): issue 7, item 12. Property-based,
through the same path as the pipe (the toolkit's schema, then config.load)."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipe import config, schema
from pipe.__main__ import read_variables
from pipe.errors import InputError, PipeError

TOKEN = jwt.encode(
    {
        "iss": "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "aud": "a",
        "sub": "s",
    },
    "k" * 32,
    algorithm="HS256",
)
BASE = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_OIDC_ROLE_ARN": "arn:aws:iam::123456789012:role/deploy",
    "BITBUCKET_STEP_OIDC_TOKEN": TOKEN,
    "IAM_USER_NAME": "ci",
    "TARGETS": "acme/shop",
    "SOURCE": "ssm:/ci/key",
    "BITBUCKET_ACCESS_TOKEN": "b" * 20,
}
# Text that breaks parsers: digits of every script, brackets, dots, control characters,
# surrogates, long runs.
NASTY = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789²٣[]{}.,/@:-_ \n\t\"'\\", max_size=60),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["9", "[", "{", "..", "a/", "\udcff"]), st.integers(1, 6000)
    ),
)


@pytest.mark.parametrize("name", [v.name for v in schema.VARIABLES if v.name != "HOME"])
# Derandomized (the same examples on every run) and without an example database on disk.
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(action=st.sampled_from(["assume", "check", "rotate", "sync"]), value=NASTY)
def test_any_value_is_settings_or_an_input_error(name: str, action: str, value: str) -> None:
    environ = BASE | {"ACTION": action, name: value}
    try:
        config.load(read_variables(environ), cwd=Path("/nonexistent/clone"), now=1_700_000_000)
    except PipeError:
        return  # one ✖ line; anything else escapes and fails the test


def cerberus_first_pass(environ: dict[str, str]) -> dict[str, str] | str:
    """What bitbucket-pipes-toolkit's ``Pipe`` did with the same patterns up to 1.0.1 (a Cerberus
    schema of the variables present): the values, or the first variable (in the schema's order)
    that broke its pattern."""
    from cerberus import Validator

    rules: dict[str, dict[str, object]] = {
        v.name: {
            "type": "string",
            "required": False,
            "nullable": True,
            **({"regex": v.pattern} if v.pattern else {}),
        }
        for v in schema.VARIABLES
        if v.name in environ
    }
    validator = Validator(schema=rules, purge_unknown=True)
    if not validator.validate({k: v for k, v in environ.items() if k in rules}):
        return next(name for name in schema.BY_NAME if name in validator.errors)
    return dict(validator.document)


PATTERNED = [v.name for v in schema.VARIABLES if v.pattern]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.dictionaries(
        st.sampled_from([*PATTERNED, "AWS_DEFAULT_REGION", "UNRELATED"]),
        st.one_of(
            NASTY,
            st.sampled_from(["true", "FALSE", "true\n", " 12 ", "12\n", "assume", "Web-Identity", "x", ""]),
        ),
        max_size=5,
    )
)
def test_the_first_pass_is_the_toolkits_schema(environ: dict[str, str]) -> None:
    """Issue 17: one validation path (schema.first_pass, then config) accepts and refuses what
    the toolkit's Cerberus schema did, and names the same variable."""
    expected = cerberus_first_pass(environ)
    try:
        got: dict[str, str] | str = schema.first_pass(environ)
    except InputError as error:
        got = error.variable
    assert got == expected
