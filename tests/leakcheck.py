"""pytest plugin: after the whole run, look for every secret the stand-ins minted (OIDC tokens,
secret keys, session tokens) in every output the pipe produced and every file it left,
except the credentials files themselves (and the token file of CREDENTIALS_MODE=web-identity).
Any hit fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standins import registry

CAPTURED: list[tuple[str, str]] = []
SCAN_DIRS: list[Path] = []
ALLOWED_FILES = frozenset({"credentials.env", "credentials", "web-identity-token"})
_summary: list[str] = []


def capture(label: str, text: str) -> None:
    CAPTURED.append((label, text))


def scan_dir(path: Path) -> None:
    SCAN_DIRS.append(path)


def find_leaks() -> tuple[list[str], int]:
    secrets = registry.snapshot()
    leaks: list[str] = []
    files = 0
    for label, text in CAPTURED:
        if any(secret in text for secret in secrets):
            leaks.append(f"output of {label}")
    for directory in SCAN_DIRS:
        if not directory.exists():
            continue
        for path in directory.rglob("*"):
            if not path.is_file() or path.is_symlink() or path.name in ALLOWED_FILES:
                continue
            files += 1
            data = path.read_bytes()
            if any(secret.encode() in data for secret in secrets):
                leaks.append(str(path))
    return leaks, files


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not CAPTURED and not SCAN_DIRS:
        return
    leaks, files = find_leaks()
    secrets = len(registry.snapshot())
    if leaks:
        _summary.append(f"LEAK CHECK FAILED: a secret appears in {len(leaks)} place(s):")
        _summary.extend(f"  {leak}" for leak in leaks)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        _summary.append(
            f"leak check: {secrets} secrets minted; {len(CAPTURED)} outputs and {files} files scanned; no leak"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _summary:
        terminalreporter.write_line(line)
