"""The AWS CLI (v1, from PyPI) in its own venv, for the demo's "later command" and the
bench's CLI route. Its botocore pin differs from ours, hence the separate venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

AWSCLI = "awscli==1.46.3"
VENV = Path(__file__).resolve().parents[2] / ".venv-bench"


def ensure_aws_cli() -> Path | None:
    """Path of `aws`, installing it on first use; None if that is impossible here."""
    aws = VENV / "bin" / "aws"
    if not aws.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        proc = subprocess.run(
            [str(VENV / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", AWSCLI],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            return None
    return aws


def ensure_jq() -> bool:
    if shutil.which("jq") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "jq"], capture_output=True, check=False)
    return shutil.which("jq") is not None
