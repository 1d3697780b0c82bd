from __future__ import annotations

import io

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
    assert "short" not in console.redactor.clean("x") and console.redactor.clean("short") == "short"


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
