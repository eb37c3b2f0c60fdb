"""Reproducible build inputs: the ingestion function's ZIP and the content digest that tags the image.

The ZIP is built from the workspace exactly as uv locked it: third-party dependencies come from
``uv export --frozen --no-dev --no-emit-workspace --package sentiment-ingestion`` installed with
``uv pip install --target`` for the Lambda's Python and platform (binary wheels only, hashes checked),
the two workspace members are built as wheels and unpacked without dependencies, and the tree is
zipped with sorted entries, a fixed timestamp and fixed permissions, so equal inputs give equal bytes
(and Pulumi sees no change). Builds are cached under a key derived from every input.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

BUILDER_VERSION = "1"
"""Bump when the build recipe changes so cached archives are rebuilt."""

LAMBDA_PYTHON = "3.12"
LAMBDA_PLATFORM = "x86_64-manylinux2014"


@dataclass(frozen=True, slots=True)
class ZipFunction:
    """A ZIP function's recipe: the package whose locked third-party dependencies it ships, the workspace members
    built into it (its own code and the shared library) and the handler Lambda runs."""

    label: str
    package: str
    members: tuple[str, ...]
    handler: str


INGESTION = ZipFunction(
    "ingestion", "sentiment-ingestion", ("packages/shared", "services/ingestion"), "sentiment_ingestion.handler.handler"
)
DASHBOARD = ZipFunction(
    "dashboard", "sentiment-dashboard", ("packages/shared", "services/dashboard"), "sentiment_dashboard.handler.handler"
)

RELEASE_CHECK_SOURCE = "services/analysis/src"
RELEASE_CHECK_FILES = ("sentiment_analysis/__init__.py", "sentiment_analysis/release_check.py")
"""The CodeDeploy hook's ZIP: these two files (under :data:`RELEASE_CHECK_SOURCE`), nothing else; the
hook needs only the standard library and the Lambda runtime's boto3 (no torch, no sentiment_shared)."""
RELEASE_CHECK_HANDLER = "sentiment_analysis.release_check.handler"

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest timestamp a ZIP entry can carry; every entry gets it."""

_EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_EXCLUDED_TOP = frozenset({"bin", ".lock"})
"""Console-script shims and uv's lock file from ``--target`` installs: useless in a function, machine-specific."""


class BuildError(RuntimeError):
    """A packaging step failed; the message carries the failing command's output."""


def iter_files(root: Path, paths: Iterable[str]) -> Iterator[Path]:
    """Files under ``paths`` (relative to ``root``), sorted, skipping caches and compiled files."""
    found: set[Path] = set()
    for rel in paths:
        target = root / rel
        if target.is_file():
            found.add(target)
            continue
        if not target.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(target):
            dirnames[:] = [d for d in dirnames if d not in _EXCLUDED_DIRS and not d.endswith(".egg-info")]
            found.update(Path(dirpath) / f for f in filenames if not f.endswith((".pyc", ".pyo")))
    return iter(sorted(found))


def source_digest(root: Path, paths: Iterable[str], *, salt: str = "") -> str:
    """SHA-256 over the relative names and contents of the files under ``paths``."""
    digest = hashlib.sha256(salt.encode())
    for path in iter_files(root, paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_reproducible_zip(source_dir: Path, dest: Path) -> None:
    """Zip ``source_dir`` with sorted entries, :data:`ZIP_EPOCH` timestamps and 0644/0755 modes."""
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(source_dir):
        rel_dir = Path(dirpath).relative_to(source_dir)
        dirnames[:] = [
            d for d in dirnames if d not in _EXCLUDED_DIRS and not (rel_dir == Path() and d in _EXCLUDED_TOP)
        ]
        for filename in filenames:
            if filename.endswith((".pyc", ".pyo")) or (rel_dir == Path() and filename in _EXCLUDED_TOP):
                continue
            path = Path(dirpath) / filename
            entries.append(((rel_dir / filename).as_posix(), path))
    entries.sort()
    with zipfile.ZipFile(dest, "w") as archive:
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the mode bits below mean the same on every machine
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


@dataclass(frozen=True, slots=True)
class ZipBuild:
    path: Path
    sha256: str
    cache_key: str
    python_version: str


def _run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise BuildError("uv is needed to build the functions' ZIP packages (https://docs.astral.sh/uv/)")
    return uv


def zip_cache_key(repo_root: Path, python_version: str, platform: str, members: Iterable[str]) -> str:
    members = tuple(members)
    inputs = ["uv.lock", "pyproject.toml", *(f"{m}/pyproject.toml" for m in members)]
    inputs += [f"{m}/src" for m in members]
    return source_digest(repo_root, inputs, salt=f"{BUILDER_VERSION}|{python_version}|{platform}")


def build_function_zip(
    function: ZipFunction,
    repo_root: Path,
    out_dir: Path,
    *,
    python_version: str = LAMBDA_PYTHON,
    platform: str = LAMBDA_PLATFORM,
    use_cache: bool = True,
) -> ZipBuild:
    """Build (or reuse) ``function``'s ZIP for ``python_version`` on ``platform``: its package's locked
    third-party dependencies plus its members."""
    package, members, label = function.package, function.members, function.label
    repo_root = repo_root.resolve()
    key = zip_cache_key(repo_root, python_version, platform, members)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{label}-py{python_version}-{key[:16]}.zip"
    if not (use_cache and dest.is_file()):
        uv = _uv()
        with tempfile.TemporaryDirectory(prefix=f"{label}-build-") as tmp:
            work = Path(tmp)
            site = work / "site"
            requirements = work / "requirements.txt"
            _run(
                [uv, "export", "--frozen", "--no-dev", "--no-emit-workspace", "--package", package,
                 "--format", "requirements-txt", "--no-header", "--output-file", str(requirements)],
                repo_root,
            )  # fmt: skip
            _run(
                [uv, "pip", "install", "--quiet", "--no-deps", "--require-hashes", "--target", str(site),
                 "--python-version", python_version, "--python-platform", platform,
                 "--only-binary", ":all:", "--no-compile", "--requirement", str(requirements)],
                repo_root,
            )  # fmt: skip
            wheels = work / "wheels"
            for member in members:
                _run(
                    [uv, "build", "--wheel", "--quiet", "--no-create-gitignore", "--out-dir", str(wheels),
                     str(repo_root / member)],
                    repo_root,
                )  # fmt: skip
            # Pure-Python wheels install by unpacking: no installer metadata, no absolute paths.
            for wheel in sorted(wheels.glob("*.whl")):
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(site)
            partial = out_dir / f".{dest.name}.{os.getpid()}.tmp"
            write_reproducible_zip(site, partial)
            partial.replace(dest)  # atomic: a concurrent build never sees half an archive
    sha256 = hashlib.sha256(dest.read_bytes()).hexdigest()
    return ZipBuild(path=dest, sha256=sha256, cache_key=key, python_version=python_version)


def build_release_check_zip(repo_root: Path, out_dir: Path) -> ZipBuild:
    """The ``BeforeAllowTraffic`` hook's ZIP: :data:`RELEASE_CHECK_FILES` only, reproducible, cached by content."""
    repo_root = repo_root.resolve()
    source = repo_root / RELEASE_CHECK_SOURCE
    key = source_digest(source, RELEASE_CHECK_FILES, salt=f"{BUILDER_VERSION}|release-check")
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"release-check-{key[:16]}.zip"
    if not dest.is_file():
        with tempfile.TemporaryDirectory(prefix="release-check-build-") as tmp:
            for rel in RELEASE_CHECK_FILES:
                if not (source / rel).is_file():
                    raise BuildError(f"{RELEASE_CHECK_SOURCE}/{rel} is missing: the release check cannot be packaged")
                target = Path(tmp) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / rel, target)
            partial = out_dir / f".{dest.name}.{os.getpid()}.tmp"
            write_reproducible_zip(Path(tmp), partial)
            partial.replace(dest)
    sha256 = hashlib.sha256(dest.read_bytes()).hexdigest()
    return ZipBuild(path=dest, sha256=sha256, cache_key=key, python_version=LAMBDA_PYTHON)


ANALYSIS_IMAGE_INPUTS = (
    "services/analysis",
    "packages/shared",
    "uv.lock",
    "pyproject.toml",
    ".dockerignore",
    "packages/client/pyproject.toml",
    "infra/pyproject.toml",
    "services/ingestion/pyproject.toml",
    "services/dashboard/pyproject.toml",
    "tools/local/pyproject.toml",
    "tools/model/pyproject.toml",
)
"""Everything the analysis Dockerfile may COPY (the workspace needs every member's pyproject)."""


def stage_image_context(repo_root: Path, dest: Path) -> Path:
    """Copy exactly :data:`ANALYSIS_IMAGE_INPUTS` into a fresh ``dest``, the image's build context.

    The docker provider rebuilds whenever anything in its context changes; a context of only the
    image's inputs means a commit touching tests, docs or infra does not rebuild and redeploy the image.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for source in iter_files(repo_root, ANALYSIS_IMAGE_INPUTS):
        target = dest / source.relative_to(repo_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


def analysis_image_tag(repo_root: Path) -> str:
    """A tag that changes exactly when the image's inputs change: says which sources an image was built from."""
    return "src-" + source_digest(repo_root, ANALYSIS_IMAGE_INPUTS)[:20]
