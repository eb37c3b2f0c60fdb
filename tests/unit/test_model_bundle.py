"""The model bundle format: reproducible packing and an extractor that refuses every hostile archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import resource
import signal
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sentiment_shared import model_bundle
from sentiment_shared.model_bundle import COMPLETE_MARKER, BundleError, extract, pack

pytestmark = pytest.mark.unit

CONFIG = b'{"model_type": "distilbert", "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}'


def make_model_dir(root: Path, *, weights: bytes = b"\x01" * 4096, extras: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_bytes(CONFIG)
    (root / "tokenizer.json").write_bytes(b'{"version": "1.0"}')
    (root / "tokenizer_config.json").write_bytes(b"{}")
    (root / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nhello\n")
    (root / "model.safetensors").write_bytes(weights)
    if extras:  # never part of a bundle
        (root / "README.md").write_text("# model card\n")
        (root / "pytorch_model.bin").write_bytes(b"pickle!")
        (root / "sub").mkdir(exist_ok=True)
        (root / "sub" / "config.json").write_bytes(b"{}")
    return root


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def reg(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


VALID = [reg("config.json", CONFIG), reg("vocab.txt", b"a\n"), reg("model.safetensors", b"w" * 64)]


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(archive path, destination dir, parent of the destination) with nothing else in the parent."""
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    return work / "bundle.tar", out / "model", out


# --------------------------------------------------------------------------- pack


def test_pack_is_reproducible_whatever_the_destination_or_file_metadata(tmp_path: Path) -> None:
    # Given the same model in two directories with different mtimes and modes
    first = make_model_dir(tmp_path / "a")
    second = make_model_dir(tmp_path / "b" / "nested")
    for path in second.iterdir():
        if path.is_file():
            os.utime(path, (1_000_000, 1_000_000))
            path.chmod(0o600)

    # When both are packed to different destinations
    one = pack(first, tmp_path / "x" / "model.tar")
    two = pack(second, tmp_path / "y" / "other-name.tar")

    # Then the bytes, and so the sha256, are identical
    assert one.sha256 == two.sha256 == sha256_of(one.path)
    assert one.size == two.size == one.path.stat().st_size
    assert one.path.read_bytes() == two.path.read_bytes()


def test_pack_writes_a_plain_tar_of_only_the_model_files_with_fixed_metadata(tmp_path: Path) -> None:
    # Given a model directory with a README, a pickle and a subdirectory besides the model
    model = make_model_dir(tmp_path / "m")

    # When it is packed
    info = pack(model, tmp_path / "model.tar")

    # Then the archive is a plain (uncompressed) tar of the model files, sorted, with fixed metadata
    raw = info.path.read_bytes()
    assert raw[257:262] == b"ustar"
    with tarfile.open(info.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) for m in members} == {
        (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
    }
    assert info.path.name == model_bundle.BUNDLE_FILE_NAME
    assert not list(tmp_path.glob(".model.tar.*"))  # no temporary left


def test_pack_follows_symlinks_like_the_hub_cache(tmp_path: Path) -> None:
    # Given a hub-cache-like snapshot whose files are symlinks to blobs
    real = make_model_dir(tmp_path / "real", extras=False)
    snap = tmp_path / "snapshot"
    snap.mkdir()
    for path in real.iterdir():
        (snap / path.name).symlink_to(path)

    # When both are packed
    # Then the symlinked snapshot packs to the same bundle as the real files
    assert pack(snap, tmp_path / "a.tar").sha256 == pack(real, tmp_path / "b.tar").sha256


@pytest.mark.parametrize(
    ("remove", "reason"),
    [
        ("model.safetensors", "safetensors weights"),
        ("config.json", "config.json"),
        ("tokenizer.json vocab.txt", "tokenizer"),
    ],
)
def test_pack_refuses_a_directory_that_is_not_a_model(tmp_path: Path, remove: str, reason: str) -> None:
    # Given a model directory missing part of the model
    model = make_model_dir(tmp_path / "m")
    for name in remove.split():
        (model / name).unlink()

    # When it is packed
    # Then it is refused, saying what is missing, and no file is written
    with pytest.raises(BundleError, match=reason):
        pack(model, tmp_path / "out" / "model.tar")
    assert not (tmp_path / "out").exists()


def test_pack_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        pack(tmp_path / "nope", tmp_path / "model.tar")


# --------------------------------------------------------------------------- extract


def test_extract_round_trips_a_packed_model(tmp_path: Path) -> None:
    # Given a packed model
    model = make_model_dir(tmp_path / "m", weights=os.urandom(300_000))
    info = pack(model, tmp_path / "model.tar")

    # When it is extracted
    out = extract(info.path, tmp_path / "cache" / "model", info.sha256)

    # Then the model files are there, byte for byte, with the completion marker written last
    assert out == tmp_path / "cache" / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        assert (out / name).read_bytes() == (model / name).read_bytes()
    assert (out / COMPLETE_MARKER).read_text().strip() == info.sha256
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["model"]
    # And extracting again is a no-op that returns the same directory
    assert extract(info.path, out, info.sha256.upper()) == out


def test_extract_refuses_a_wrong_digest_and_leaves_nothing(layout: tuple[Path, Path, Path], tmp_path: Path) -> None:
    # Given a valid bundle and the digest of something else
    archive, dest, parent = layout
    info = pack(make_model_dir(tmp_path / "m"), archive)
    wrong = hashlib.sha256(b"another model").hexdigest()

    # When it is extracted against the wrong digest
    with pytest.raises(BundleError, match="sha256 mismatch"):
        extract(info.path, dest, wrong)

    # Then nothing is left: no destination, no temporary directory
    assert snapshot(parent) == set()


@pytest.mark.parametrize("digest", ["", "abc", "g" * 64, "0" * 63])
def test_extract_refuses_a_malformed_digest(layout: tuple[Path, Path, Path], tmp_path: Path, digest: str) -> None:
    archive, dest, parent = layout
    pack(make_model_dir(tmp_path / "m"), archive)
    with pytest.raises(BundleError, match="64 hex"):
        extract(archive, dest, digest)
    assert snapshot(parent) == set()


def test_extract_reads_legacy_gzip_bundles_detected_by_content(tmp_path: Path) -> None:
    # Given a gzip-compressed bundle with a misleading file name
    info = pack(make_model_dir(tmp_path / "m"), tmp_path / "model.tar")
    legacy = tmp_path / "model.tar"  # same name as a plain tar: detection is by magic bytes
    legacy.write_bytes(gzip.compress(info.path.read_bytes(), mtime=0))

    # When it is extracted with the digest of the compressed file
    out = extract(legacy, tmp_path / "out", sha256_of(legacy))

    # Then the model comes out
    assert (out / "config.json").read_bytes() == CONFIG


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 600, "zstd"),
        (b"PK\x03\x04" + b"\x00" * 600, "not a model bundle"),
        (b"", "not a model bundle"),
    ],
)
def test_extract_refuses_unknown_formats(layout: tuple[Path, Path, Path], payload: bytes, match: str) -> None:
    archive, dest, parent = layout
    archive.write_bytes(payload)
    with pytest.raises(BundleError, match=match):
        extract(archive, dest, hashlib.sha256(payload).hexdigest())
    assert snapshot(parent) == set()


def test_extract_refuses_a_truncated_bundle(layout: tuple[Path, Path, Path], tmp_path: Path) -> None:
    # Given a bundle cut in the middle of its weights
    archive, dest, parent = layout
    info = pack(make_model_dir(tmp_path / "m", weights=os.urandom(50_000)), tmp_path / "full.tar")
    archive.write_bytes(info.path.read_bytes()[:20_000])

    # When it is extracted (with the digest of the truncated bytes, so only the format can object)
    with pytest.raises(BundleError, match=r"truncated|corrupt"):
        extract(archive, dest, sha256_of(archive))

    # Then nothing is left
    assert snapshot(parent) == set()


def test_extract_refuses_a_bundle_without_weights(layout: tuple[Path, Path, Path]) -> None:
    archive, dest, parent = layout
    digest = build_tar(archive, [reg("config.json", CONFIG), reg("vocab.txt")])
    with pytest.raises(BundleError, match="no model"):
        extract(archive, dest, digest)
    assert snapshot(parent) == set()


def test_extract_refuses_a_non_empty_foreign_destination(layout: tuple[Path, Path, Path], tmp_path: Path) -> None:
    archive, dest, _ = layout
    info = pack(make_model_dir(tmp_path / "m"), archive)
    dest.mkdir()
    (dest / "something.txt").write_text("mine")
    with pytest.raises(BundleError, match="exists"):
        extract(info.path, dest, info.sha256)
    assert sorted(p.name for p in dest.iterdir()) == ["something.txt"]


def _hostile_cases(outside: Path) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    pax = tarfile.TarInfo("config.json")
    pax.pax_headers = {"path": "../pax-escape.json"}
    gnu_long = tarfile.TarInfo("../" * 40 + "gnu-escape.json")  # > 100 chars: a GNU/PAX long name
    return {
        "absolute path": [*VALID, reg(str(outside / "abs-escape.json"))],
        "dot-dot": [*VALID, reg("../dotdot-escape.json")],
        "dot-dot inside": [*VALID, reg("sub/../../inner-escape.json")],
        "nested path": [*VALID, reg("sub/config.json")],
        "symlink": [special("tokenizer.json", tarfile.SYMTYPE, str(outside / "target")), *VALID],
        "symlink then write through it": [
            special("model.safetensors", tarfile.SYMTYPE, str(outside / "through")),
            *VALID,
        ],
        "hardlink": [*VALID, special("tokenizer.json", tarfile.LNKTYPE, str(outside / "target"))],
        "hardlink to member": [*VALID, special("tokenizer.json", tarfile.LNKTYPE, "config.json")],
        "character device": [*VALID, special("tokenizer.json", tarfile.CHRTYPE)],
        "block device": [*VALID, special("tokenizer.json", tarfile.BLKTYPE)],
        "fifo": [*VALID, special("tokenizer.json", tarfile.FIFOTYPE)],
        "directory": [special("sub", tarfile.DIRTYPE), *VALID],
        "duplicate": [*VALID, reg("config.json", b'{"evil": 1}')],
        "pickle weights": [*VALID, reg("pytorch_model.bin", b"cos\nsystem\n")],
        "python file": [*VALID, reg("modeling_evil.py", b"import os")],
        "forged completion marker": [*VALID, reg(COMPLETE_MARKER, b"0" * 64)],
        "pax path override": [(pax, CONFIG), *VALID[1:]],
        "gnu long name": [*VALID, (gnu_long, b"{}")],
        "backslash path": [*VALID, reg("..\\backslash-escape.json")],
    }


HOSTILE_NAMES = sorted(_hostile_cases(Path("/x")))


@pytest.mark.reliability(
    area="model fetch",
    case="hostile archive members (absolute paths, `..`, links, devices, fifos)",
    expected="refused before anything is written outside the destination",
)
@pytest.mark.parametrize("case", HOSTILE_NAMES)
def test_extract_refuses_hostile_archives(tmp_path: Path, case: str) -> None:
    # Given a hostile archive (with its correct digest, so only the member checks can refuse it)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("do not touch")
    archive, parent = tmp_path / "bundle.tar", tmp_path / "out"
    parent.mkdir()
    digest = build_tar(archive, _hostile_cases(outside)[case])
    before = snapshot(tmp_path)

    # When it is extracted
    with pytest.raises(BundleError, match="refusing"):
        extract(archive, parent / "model", digest)

    # Then nothing was written anywhere: no destination, no temporary dir, nothing outside
    assert snapshot(tmp_path) == before
    assert (outside / "target").read_text() == "do not touch"


@pytest.mark.reliability(
    area="model fetch",
    case="no space left in the cache directory while extracting (ENOSPC)",
    expected="a clear error, no partial model left behind",
)
def test_extract_reports_a_full_disk_cleanly(layout: tuple[Path, Path, Path], tmp_path: Path) -> None:
    # Given a bundle whose weights exceed what the process may write (RLIMIT_FSIZE stands in for ENOSPC)
    archive, dest, parent = layout
    info = pack(make_model_dir(tmp_path / "m", weights=os.urandom(512 * 1024)), archive)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
    try:
        # When it is extracted
        with pytest.raises(BundleError, match="disk space") as err:
            extract(info.path, dest, info.sha256)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)

    # Then the error is a clear one and nothing is left behind
    assert "ephemeral storage" in str(err.value)
    assert snapshot(parent) == set()


# --------------------------------------------------------------------------- properties

_TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
_NAMES = st.one_of(
    st.sampled_from(["config.json", "model.safetensors", "vocab.txt", "tokenizer.json", COMPLETE_MARKER]),
    st.sampled_from(["..", "../config.json", "/config.json", "./config.json", "a/../config.json", "sub/vocab.txt"]),
    st.text(alphabet=st.sampled_from("ab./\\-_~:é\n "), min_size=1, max_size=12),
)
_MEMBERS = st.lists(
    st.tuples(_NAMES, st.sampled_from(_TYPES), st.sampled_from(["config.json", "../x", "/etc/passwd", ""])),
    min_size=0,
    max_size=6,
)


def _expected_ok(members: list[tuple[str, bytes, str]]) -> bool:
    names = [name for name, _, _ in members]
    return (
        all(kind == tarfile.REGTYPE and model_bundle.is_bundle_member_name(name) for name, kind, _ in members)
        and len(set(names)) == len(names)
        and "config.json" in names
        and any(name.endswith(".safetensors") for name in names)
    )


@pytest.mark.reliability(
    area="model fetch",
    case="property: arbitrary archives (hypothesis)",
    expected="no extracted path ever lands outside the destination",
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=_MEMBERS, with_model=st.booleans())
def test_property_no_archive_escapes_the_destination(members: list[tuple[str, bytes, str]], with_model: bool) -> None:
    # Given an arbitrary archive of arbitrary member names and types (sometimes around a valid model)
    if with_model:
        members = [("config.json", tarfile.REGTYPE, ""), *members, ("model.safetensors", tarfile.REGTYPE, "")]
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        archive, parent = root / "bundle.tar", root / "deep" / "out"
        parent.mkdir(parents=True)
        try:
            digest = build_tar(
                archive,
                [special(n, k, link) if k != tarfile.REGTYPE else reg(n, b"{}") for n, k, link in members],
            )
        except (ValueError, UnicodeError):
            assume(False)
        before = snapshot(root)

        # When it is extracted
        outcome: Callable[[], Path] = lambda: extract(archive, parent / "model", digest)  # noqa: E731
        if _expected_ok(members):
            out = outcome()
            # Then only regular, allow-listed files sit directly in the destination
            written = snapshot(root) - before
            assert written == {
                "deep/out/model",
                *(f"deep/out/model/{n}" for n, _, _ in members),
                f"deep/out/model/{COMPLETE_MARKER}",
            }
            assert all(p.is_file() and not p.is_symlink() for p in out.iterdir())
        else:
            with pytest.raises(BundleError):
                outcome()
            # Then nothing at all was written
            assert snapshot(root) == before


def test_extract_reports_an_unusable_destination_as_a_bundle_error(tmp_path: Path) -> None:
    # Given a destination whose parent is a regular file
    info = pack(make_model_dir(tmp_path / "m"), tmp_path / "model.tar")
    (tmp_path / "not-a-dir").write_text("")

    # When it is extracted there, or a missing archive is extracted
    # Then both are BundleErrors, not bare OSErrors
    with pytest.raises(BundleError, match="cannot create"):
        extract(info.path, tmp_path / "not-a-dir" / "model", info.sha256)
    with pytest.raises(BundleError, match="not found"):
        extract(tmp_path / "missing.tar", tmp_path / "out", info.sha256)
