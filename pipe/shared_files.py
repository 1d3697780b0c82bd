"""The AWS shared files (``credentials`` and ``config``) as configparser reads them: read through
pipe.files, and never read as empty when they cannot be parsed (writing them back would drop the
other profiles). Shared by ``profile:`` targets (pipe.profile) and assume's hand-off
(pipe.handoff), which both rewrite one profile and keep the others.

A file with a ``[DEFAULT]`` section is refused (issue 15, item 10). configparser, and botocore
reading the file after the pipe, apply ``[DEFAULT]``'s keys to every profile: a committed file or
an earlier step's artefact could give the pipe's own profile an ``endpoint_url``, a
``credential_process`` or an ``aws_session_token``, and every later SDK call would go there.
Neither dropping the section (it silently changes the other profiles) nor keeping it (it
changes ours) is right, and no key can be unset in a profile: the user moves the keys."""

from __future__ import annotations

import configparser
import io
from collections.abc import Callable
from pathlib import Path

from pipe import files
from pipe.console import shown
from pipe.errors import PipeError

Fail = Callable[[str, str], PipeError]  # (message, hint) -> the error to raise


def read(path: Path, variable: str, fail: Fail) -> configparser.ConfigParser:
    """The file at ``path``, parsed; a missing file has no sections. A file that cannot be read
    or parsed (not UTF-8, a section or a key given twice, which the AWS SDKs refuse too) raises
    ``fail(message, hint)``; messages never quote the file's lines."""
    parser = configparser.ConfigParser(interpolation=None)
    data = files.read_file(path, variable=variable)
    if data is None:
        return parser

    def error(problem: str, hint: str = f"Fix the file, or point {variable} at another one.") -> PipeError:
        return fail(f"{variable} {path} {problem}", hint)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.DuplicateSectionError as exc:
        raise error(
            f"has profile {shown(exc.section)} twice (line {exc.lineno})",
            "Merge the two sections into one: the AWS SDKs refuse such a file too.",
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise error(
            f"has {shown(exc.option)} twice in profile {shown(exc.section)} (line {exc.lineno})",
            "Keep one of them: the AWS SDKs refuse such a file too.",
        ) from None
    except configparser.MissingSectionHeaderError as exc:
        raise error(f"is not a credentials file (line {exc.lineno} is outside any [profile])") from None
    except configparser.ParsingError as exc:
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        raise error(f"is not a credentials file (cannot parse line {lines})") from None
    except configparser.Error:
        raise error("is not a credentials file") from None
    if parser.defaults():
        raise error(
            f"has a [{parser.default_section}] section ({', '.join(shown(k) for k in sorted(parser.defaults()))}), "
            "whose keys the AWS SDKs apply to every profile, the pipe's own included",
            f"Move those keys into the profiles that need them and remove [{parser.default_section}] "
            f"(or point {variable} at another file): the pipe does not write a profile that "
            "another section can send elsewhere.",
        )
    return parser


def render(parser: configparser.ConfigParser) -> str:
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()
