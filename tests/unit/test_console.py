from __future__ import annotations

import io

import pytest

from pipe import console as redaction
from pipe.console import Console
from pipe.errors import PipeError


def test_secrets_are_masked_in_logs_details_and_the_final_line() -> None:
    stream = io.StringIO()
    console = Console(stream)
    console.secrets("super-secret-value", "short")
    console.info("token super-secret-value here")
    console.failure(PipeError("failed with super-secret-value", "fix it", ("detail super-secret-value",)))
    text = stream.getvalue()
    assert "super-secret-value" not in text and text.count("****") == 3
    assert text.splitlines()[-1] == "✖ failed with ****. fix it"
    # Values under 8 characters are not registered: they would mask ordinary words.
    assert console.redactor.clean("a short word") == "a short word"


def test_unexpected_errors_show_no_traceback_unless_debug() -> None:
    stream = io.StringIO()
    console = Console(stream)
    console.secrets("hidden-secret-1234")
    console.unexpected(ValueError("boom hidden-secret-1234"))
    assert "Traceback" not in stream.getvalue() and stream.getvalue().startswith(
        "✖ Unexpected internal error (ValueError)"
    )
    console.enable_debug()
    try:
        raise ValueError("boom hidden-secret-1234")
    except ValueError as exc:
        console.unexpected(exc)
    assert "Traceback" in stream.getvalue() and "hidden-secret-1234" not in stream.getvalue()


def test_the_failure_is_one_line_whatever_the_message() -> None:
    stream = io.StringIO()
    Console(stream).failure(PipeError("AWS said <Error>\n  <Code>X</Code>\n</Error>", "fix\nit"))
    assert stream.getvalue() == "✖ AWS said <Error> <Code>X</Code> </Error>. fix it\n"


@pytest.mark.parametrize(
    "pasted", ["pasted-secret-1234\n", "  pasted-secret-1234 ", '"pasted-secret-1234"\n']
)
def test_a_secret_pasted_with_whitespace_or_quotes_is_masked_as_used(pasted: str) -> None:
    """The pipe uses the stripped value; that is what may be printed (issue 7, item 11)."""
    stream = io.StringIO()
    console = Console(stream)
    console.secrets(pasted)
    console.info("used pasted-secret-1234 here")
    console.failure(PipeError(f"got {pasted!r}"))
    assert "pasted-secret-1234" not in stream.getvalue(), stream.getvalue()
    assert stream.getvalue().count("****") == 2


def test_a_secret_is_masked_in_its_escaped_forms() -> None:
    stream = io.StringIO()
    console = Console(stream)
    console.secrets('se"cret\\value-1234')
    console.failure(PipeError("json " + '"se\\"cret\\\\value-1234"'))
    assert "cret" not in stream.getvalue(), stream.getvalue()


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "value",
    [
        AWS_SECRET,
        f"  {AWS_SECRET}\n",
        "ATATT3xFfGF0" + "a1B2c3D4e5" * 4,
        "ATBBx7Kp2Lq9Wm4Zr8Tn3Yv6Hs1Jd5Fg0Ac",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "Zx8Qw2Lm5Rt7Yp1Kc4Vb9Nh3",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "secret=" + AWS_SECRET,
        "x7Kp-2Lq9_Wm4Zr-8Tn3Yv6_Hs1Jd5Fg-0AcQe",  # base64url
    ],
)
def test_values_that_look_like_secrets(value: str) -> None:
    assert redaction.looks_secret(value)
    assert value.strip() not in redaction.shown(value) and "not shown" in redaction.shown(value)


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:iam::123456789012:role/path/to/deploy",
        "AKIAIOSFODNN7EXAMPLE",
        "eu-west-1",
        "acme/shop@Production",
        "secretsmanager:ci/aws-key, ssm:/ci/key",
        "/opt/atlassian/pipelines/agent/build/aws-credentials-reports",
        "https://api.bitbucket.org/2.0",
        "bitbucket-my-repo-1234",
        "ci-Deploy-User-2024-production",
        "svc-Bitbucket-Pipelines-Deploy-2024",
        "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}",
        "123456789012, 210987654321",
        "9" * 60,
    ],
)
def test_ordinary_values_are_shown(value: str) -> None:
    assert not redaction.looks_secret(value)
    assert redaction.shown(value) == repr(value)


def test_long_values_are_cut() -> None:
    text = redaction.shown("1" * 5000)
    assert len(text) < 120 and "5000 characters" in text


def test_undecodable_bytes_are_printed_escaped() -> None:
    """A value with bytes that are not UTF-8 (lone surrogates from the environment) must not
    stop the failure line from being printed."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    console = Console(stream)
    console.failure(PipeError("bad value '\udcff'"))
    stream.flush()
    assert raw.getvalue().decode() == "✖ bad value '\\udcff'.\n"


LINES = (
    "from pipe.console import Console, toolkit\n"
    "c = Console()\n"
    "c.secrets('proxy-secret-1')\n"
    "c.info('info proxy-secret-1'); c.warning('warn'); c.debug('not shown')\n"
    "c.enable_debug(); c.debug('debug')\n"
    "import logging; logging.getLogger('botocore.credentials').warning('the SDK warns')\n"
    "c.success('done')\n"
)


def _lines(prelude: str, script: str = LINES) -> str:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-I", "-c", prelude + script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
    )
    return out.stdout + out.stderr


def test_the_lines_look_as_bitbucket_pipes_toolkit_printed_them() -> None:
    """Issue 17: the console no longer imports the toolkit, and its lines are byte for byte what
    they were with the toolkit's logger (its import makes that logger; the console took it)."""
    ours = _lines("import sys\n", LINES + "assert 'bitbucket_pipes_toolkit' not in sys.modules\n")
    theirs = _lines("import bitbucket_pipes_toolkit\n")
    assert ours == theirs
    assert ours.splitlines() == [
        "\x1b[34mINFO: info ****\x1b[0m",
        "\x1b[33mWARNING: warn\x1b[0m",
        "\x1b[37mDEBUG: debug\x1b[0m",
        "\x1b[33mWARNING: the SDK warns\x1b[0m",
        "✔ done",
    ]


def test_importing_the_toolkit_later_prints_no_line_twice() -> None:
    """Code Insights imports the toolkit after the console is made: its logger set-up (a second
    handler, the level back to INFO) is undone, so each line is printed once, DEBUG kept."""
    script = (
        "from pipe.console import Console, toolkit\n"
        "c = Console(); c.secrets('proxy-secret-1'); c.enable_debug()\n"
        "assert toolkit().CodeInsights\n"
        "c.debug('debug proxy-secret-1'); c.info('info')\n"
    )
    assert _lines("", script).splitlines() == [
        "\x1b[37mDEBUG: debug ****\x1b[0m",
        "\x1b[34mINFO: info\x1b[0m",
    ]
