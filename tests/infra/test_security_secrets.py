"""No secret in code, config or stack state: credentials come only from the environment or Pulumi secrets.

* every tracked file is scanned for credential shapes (AWS keys, private keys, GitHub/Hugging Face/Slack
  tokens; plain ``password: ...`` assignments in config files);
* a stack config key that names a secret must hold a Pulumi ``secure:`` value;
* the program, run under the mocks with distinctive credentials in its environment, puts none of them
  into any resource input or output, provider call or stack output, and sends the registry password
  as a secret.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_mocks import REPO_ROOT, STACKS, ProgramRun, run_program
from reliability_table import Recorder

pytestmark = pytest.mark.infra

CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{34,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
}
CONFIG_ASSIGNMENT = re.compile(
    r"(?i)\b(?:password|passwd|secret|token|api_?key|access_?key)\b\s*[:=]\s*['\"]?(?!\$\{\{|secure:)[^\s'\"#]{8,}"
)
"""A secret-named key with a literal value in a config file (``${{ secrets.X }}`` and ``secure:`` are fine)."""
CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".json", ".cfg", ".ini", ".env")
SECRET_KEY_NAME = re.compile(r"(?i)(password|passwd|secret|token|credential|api_?key|private_?key)")


def _tracked_files() -> list[Path]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.skip("not a git checkout: the tracked-file scan needs git ls-files")
    return [REPO_ROOT / name for name in result.stdout.decode().split("\0") if name]


def findings(path: Path, text: str) -> list[str]:
    found = [f"{name}: {m.group(0)[:12]}…" for name, rx in CREDENTIAL_PATTERNS.items() for m in rx.finditer(text)]
    if path.name.endswith(CONFIG_SUFFIXES) and path.name != "uv.lock":
        found += [f"literal secret in config: {m.group(0)[:24]}…" for m in CONFIG_ASSIGNMENT.finditer(text)]
    return found


def test_the_scanner_catches_each_kind_of_credential() -> None:
    # Given planted credentials (assembled here, so this file itself holds none)
    samples = {
        "AWS access key id": "AKIA" + "Q" * 16,
        "AWS secret access key": "aws_secret_access_key = " + "a1B2" * 10,
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "GitHub token": "ghp_" + "x" * 36,
        "Hugging Face token": "hf_" + "A" * 34,
        "Slack token": "xoxb-" + "1" * 12,
    }
    # Then each is found, and a literal password in a config file too, but not a workflow secret reference
    for name, sample in samples.items():
        assert findings(Path("x.py"), f"value = '{sample}'"), name
    assert findings(Path("c.yaml"), "db:\n  password: hunter2hunter2\n")
    assert not findings(Path("w.yml"), "token: ${{ secrets.GITHUB_TOKEN }}\n")
    assert not findings(Path("Pulumi.dev.yaml"), "  app:apiKey:\n    secure: AAABAHZhbHVl\n")


def test_no_tracked_file_holds_a_credential(reliability: Recorder) -> None:
    reliability.case(
        "security: secrets",
        "credential shapes in any tracked file (AWS keys, private keys, GitHub/HF/Slack tokens, literal "
        "passwords in config)",
        "none",
    )
    problems: list[str] = []
    scanned = 0
    for path in _tracked_files():
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        scanned += 1
        problems += [f"{path.relative_to(REPO_ROOT)}: {f}" for f in findings(path, data.decode("utf-8", "replace"))]
    assert scanned > 50
    assert problems == []
    reliability.observed(f"{scanned} tracked text files scanned, 0 findings")


@pytest.mark.parametrize("stack", STACKS)
def test_secret_named_stack_config_is_a_pulumi_secret(stack: str, reliability: Recorder) -> None:
    reliability.case("security: secrets", f"Pulumi.{stack}.yaml: secret-named keys", "only `secure:` values")
    config: dict[str, Any] = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"] or {}
    plain = [k for k, v in config.items() if SECRET_KEY_NAME.search(k) and not (isinstance(v, dict) and "secure" in v)]
    assert plain == []
    reliability.observed(f"{len(config)} keys, none secret-named in plain text")


FAKE_SECRETS = {
    "HF_TOKEN": "hf_" + "Reliab1lity" * 4,
    "AWS_SECRET_ACCESS_KEY": "reliability/Secret+Access+Key/0123456789ab",
    "AWS_SESSION_TOKEN": "reliability-session-token-0123456789",
    "PULUMI_CONFIG_PASSPHRASE": "reliability-passphrase-0123456789",
}


def test_credentials_in_the_environment_never_reach_resources_calls_or_outputs(
    monkeypatch: pytest.MonkeyPatch, reliability: Recorder
) -> None:
    reliability.case(
        "security: secrets",
        "HF token, AWS secret key, session token and state passphrase in the deploying environment",
        "none in any resource input/output, provider call or stack output; the registry password is a secret",
    )
    # Given a deploy environment holding credentials
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    # When the program runs
    run: ProgramRun = run_program("dev")
    # Then no credential is in the state it would write
    state = json.dumps(
        {
            "resources": [{"type": r.type, "inputs": r.inputs, "outputs": r.outputs} for r in run.resources],
            "calls": run.calls,
            "outputs": run.outputs,
        },
        default=str,
    )
    leaked = [name for name, value in FAKE_SECRETS.items() if value in state]
    assert leaked == []
    secret_outputs = [k for k in run.outputs if SECRET_KEY_NAME.search(k)]
    assert secret_outputs == []
    image = run.one("docker:index/image:Image")
    assert "registry" in image.secret_inputs
    reliability.observed(f"{len(run.resources)} resources, {len(run.outputs)} outputs: 0 leaks; registry input secret")
