"""Third-party scanners over templates/ (issue 16): checkov and cfripper, run as their own
processes over every template rendered (tests/cloudformation.py) with each parameter set
docs/setup.md shows, and with one set per switch the docs leave out, so every resource and
statement a template can produce is scanned. cfn-lint runs in tests/unit/test_templates.py.

A finding is either fixed in the template or suppressed where it stands, with its reason:
checkov's ``Metadata: checkov: skip: [{id, comment}]`` on the resource; cfripper's rules the
same way, ``Metadata: cfripper: skip: [{rule, comment}]`` (cfripper has no in-template
suppression of its own; this test applies it, and refuses one without a comment). Both
scanners must find nothing else.

checkov pins a boto3 older than the one the tests need (requirements-dev.txt), so it lives in
its own virtualenv, ``.venv-checkov`` (requirements-checkov.txt, made by ``make install``);
cfripper installs beside the tests. A scanner that is missing fails the test: never a skip."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest

from tests.cloudformation import TEMPLATES, Stack, load

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "setup.md"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CFRIPPER = Path(sys.executable).parent / "cfripper"
UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
# The docs' placeholders (<workspace UUID>, <AUDIT_EXTERNAL_ID>...) by parameter.
PLACEHOLDER = {"ExternalId": "acme-audit-7"}
_COMMAND = re.compile(r"(?:--template-file |--template-body file://)templates/([\w.-]+\.yaml)")
# One parameter set per switch the docs' commands leave at its default.
SWITCHES: list[tuple[str, dict[str, str]]] = [
    (
        "oidc.yaml",
        {
            "DeploymentEnvironmentUuid": UUID,
            "LegacyKeyUsers": "legacy-*",
            "RetireLegacyKeys": "true",
            "WorkspaceCheck": "true",
            "ChainedRoleArns": "arn:aws:iam::210987654321:role/deploy",
            "CreateProvider": "false",
            "RoleName": "deploy",
        },
    ),
    ("oidc.yaml", {"AllowCheck": "false", "AllowAnyBranch": "true"}),
    (
        "rotation.yaml",
        {
            "DeploymentEnvironmentUuid": UUID,
            "UserName": "ci",
            "SecretName": "ci/key",
            "KmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/" + UUID,
            "CreateProvider": "true",
        },
    ),
    (
        "rotation.yaml",
        {
            "DeploymentEnvironmentUuid": UUID,
            "UserName": "ci",
            "ParameterName": "/ci/key",
            "CreateUser": "false",
            "RoleName": "rotate-ci",
            "StoreRegion": "eu-central-1",
            "KmsKeyId": "arn:aws:kms:eu-central-1:123456789012:key/" + UUID,
        },
    ),
    ("self-service.yaml", {"Users": "jane", "IncludeDefaultStore": "false", "PolicyName": "rotate-own-key"}),
    (
        "self-service.yaml",
        {"Groups": "developers", "KmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/" + UUID},
    ),
    ("audit-hub.yaml", {"AuditMode": "report", "AuditThisAccount": "false", "CreateProvider": "true"}),
    (
        "audit-hub.yaml",
        {"AuditMode": "revoke", "DeploymentEnvironmentUuid": UUID, "MemberAccountIds": "222222222222"},
    ),
    ("audit-member.yaml", {"HubAccountId": "111111111111"}),
    ("audit-member.yaml", {"HubAccountId": "111111111111", "AuditMode": "revoke"}),
]


def _bitbucket(template: str) -> dict[str, str]:
    if "WorkspaceUuid" not in load(template)["Parameters"]:
        return {}
    return {"WorkspaceName": "acme", "WorkspaceUuid": UUID, "RepositoryUuid": UUID}


def documented_parameter_sets(text: str) -> list[tuple[str, dict[str, str]]]:
    """(template, parameters) of every deploy or create-stack-set command in ``text``."""
    out = []
    commands = re.sub(r"\\\n\s*", " ", text).splitlines()
    for line in commands:
        template = _COMMAND.search(line)
        if not template:
            continue
        command = re.sub(r"<[^>]*>", "PLACEHOLDER", line)
        words = command.split()
        parameters: dict[str, str] = {}
        if "--parameter-overrides" in words:
            for word in words[words.index("--parameter-overrides") + 1 :]:
                if word.startswith("--") or "=" not in word:
                    break
                key, _, value = word.partition("=")
                parameters[key] = value
        for key, value in re.findall(r"ParameterKey=(\w+),ParameterValue=(\S+)", command):
            parameters[key] = value
        for key, value in parameters.items():
            if value == "PLACEHOLDER":
                parameters[key] = PLACEHOLDER.get(key, UUID)
        out.append((template.group(1), parameters))
    return out


def parameter_sets() -> list[tuple[str, dict[str, str]]]:
    documented = documented_parameter_sets(DOCS.read_text())
    assert {t for t, _ in documented} == {p.name for p in TEMPLATES.glob("*.yaml")}, documented
    return [(t, {**_bitbucket(t), **p}) for t, p in [*documented, *SWITCHES]]


CASES = parameter_sets()


@cache
def rendered_files(folder: Path) -> list[Path]:
    """Each case rendered to a JSON file in ``folder``."""
    files = []
    for number, (template, parameters) in enumerate(CASES):
        path = folder / f"{number:02d}-{template.removesuffix('.yaml')}.json"
        path.write_text(json.dumps(Stack(template, parameters, name=f"scan-{number}").rendered(), indent=1))
        files.append(path)
    return files


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return rendered_files(tmp_path_factory.mktemp("rendered"))


def test_the_docs_commands_and_every_switch_are_scanned() -> None:
    templates = {t for t, _ in CASES}
    assert templates == {p.name for p in TEMPLATES.glob("*.yaml")}
    for template in templates:  # every Condition of every template is true in some case
        names = load(template).get("Conditions", {})
        hit = {n for t, p in CASES if t == template for n, v in Stack(t, p).conditions.items() if v}
        assert set(names) - hit == set(), f"{template}: no scanned case makes {sorted(set(names) - hit)} true"


def _run(command: list[str], cwd: Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=cwd)
    return result, time.monotonic() - start


def test_checkov_finds_nothing_unsuppressed(rendered: list[Path]) -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run make install (requirements-checkov.txt)"
    # --skip-download: no network is reachable, and checkov must not try (requirements-checkov.txt).
    command = [
        str(CHECKOV),
        "--quiet",
        "--compact",
        "--skip-download",
        "--framework",
        "cloudformation",
        "-o",
        "json",
    ]
    result, seconds = _run([*command, *(arg for path in rendered for arg in ("-f", str(path)))])
    reports = json.loads(result.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{Path(check['file_path']).name} {check['resource']} {check['check_id']} {check['check_name']}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    skipped = [c for report in reports for c in report.get("results", {}).get("skipped_checks", [])]
    assert failed == [], "\n".join(failed)
    assert all(str(c.get("suppress_comment", "")).strip() for c in skipped), (
        "a checkov skip without a comment"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert seconds < 120, f"checkov took {seconds:.0f} s"


def _cfripper_skips(template: str) -> dict[str, dict[str, str]]:
    """Logical id -> {rule: comment} from the resources' ``Metadata: cfripper: skip``."""
    out: dict[str, dict[str, str]] = {}
    for logical, spec in load(template)["Resources"].items():
        for skip in spec.get("Metadata", {}).get("cfripper", {}).get("skip", []):
            assert str(skip.get("comment", "")).strip(), (
                f"{template} {logical}: a cfripper skip without a comment"
            )
            out.setdefault(logical, {})[skip["rule"]] = skip["comment"]
    return out


def test_cfripper_finds_nothing_unsuppressed(rendered: list[Path], tmp_path: Path) -> None:
    assert CFRIPPER.exists(), f"{CFRIPPER} is missing: run make install (requirements-dev.txt)"
    command = [
        str(CFRIPPER),
        "--format",
        "json",
        "--output-folder",
        str(tmp_path),
        "--aws-account-id",
        "123456789012",
    ]
    # Relative names: cfripper writes <output folder>/<the name as given>.cfripper.results.json.
    result, seconds = _run([*command, *(p.name for p in rendered)], cwd=rendered[0].parent)
    assert result.returncode in (0, 2), result.stdout[-2000:] + result.stderr[-2000:]
    findings = []
    for path, (template, _) in zip(rendered, CASES, strict=True):
        output = next(tmp_path.glob(f"{path.name}.cfripper.results.json"), None)
        assert output is not None, f"cfripper wrote nothing for {path.name}: {result.stdout[-1000:]}"
        report = json.loads(output.read_text())
        skips = _cfripper_skips(template)
        for failure in report.get("failures", []):
            resources = failure.get("resource_ids") or [""]
            if all(failure["rule"] in skips.get(r, {}) for r in resources):
                continue
            findings.append(f"{path.name} {failure['rule']} {resources}: {failure['reason']}")
    assert findings == [], "\n".join(findings)
    assert seconds < 120, f"cfripper took {seconds:.0f} s"
