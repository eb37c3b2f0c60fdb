"""``sentiment-model``: publish or pack a model bundle by hand (the same functions ``pulumi up`` uses).

    sentiment-model publish (--model-dir DIR | --model ID[@REVISION]) --bucket B --key K [--json]
    sentiment-model pack DIR OUT [--json]

``publish`` prints (or, with ``--json``, emits one JSON object
with) ``s3_uri``, ``sha256``, ``size`` and ``uploaded`` (false when the identical object was already
there). Progress bars appear only on a terminal. Bad input exits non-zero with a one-line error on
stderr, never a traceback. Credentials come from the environment (AWS, ``HF_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from sentiment_shared.cli_errors import one_line, run_command
from sentiment_shared.model_bundle import BundleError, pack
from sentiment_shared.model_publish import ModelSource, PublishError, publish

EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the contract is a one-line error.
        raise _UsageError(message)


# S3's general purpose bucket names: 3-63 characters of lowercase letters, digits, dots and hyphens, a letter
# or digit at both ends, no two adjacent dots, not an IP address. Checked here so the error says that (botocore's
# own check prints its regex).
_BUCKET_NAME = re.compile(r"(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _bucket(name: str) -> str:
    if not _BUCKET_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{name!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots or hyphens, "
            "starting and ending with a letter or digit)"
        )
    return name


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sentiment-model", description="Publish or pack a sentiment model bundle.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    pub = commands.add_parser("publish", help="pack a model and upload it to S3 (skipped if already there)")
    source = pub.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a local model directory (config, tokenizer, safetensors)")
    source.add_argument("--model", metavar="ID[@REVISION]", help="a Hugging Face hub model, optionally pinned")
    pub.add_argument("--bucket", required=True, type=_bucket)
    pub.add_argument("--key", required=True, help="e.g. distilbert/v1.0.0/model.tar")
    pub.add_argument("--json", action="store_true", help="print one JSON object")

    pk = commands.add_parser("pack", help="write the reproducible bundle of a model directory")
    pk.add_argument("model_dir", type=Path, metavar="DIR")
    pk.add_argument("out", type=Path, metavar="OUT")
    pk.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _upload_bars() -> Iterator[Callable[[int], Callable[[int], None]] | None]:
    """A factory of upload progress callbacks backed by tqdm, on a terminal only."""
    if not _is_tty():
        yield None
        return
    from tqdm import tqdm  # type: ignore[import-untyped]

    bars: list[Any] = []

    def open_bar(total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="upload", file=sys.stderr)
        bars.append(bar)
        update: Callable[[int], None] = bar.update
        return update

    try:
        yield open_bar
    finally:
        for bar in bars:
            bar.close()


def _emit(payload: dict[str, Any], *, as_json: bool, text: str) -> None:
    sys.stdout.write((json.dumps(payload, sort_keys=True) if as_json else text) + "\n")


def _publish(args: argparse.Namespace) -> int:
    source = ModelSource(model_dir=args.model_dir) if args.model_dir else ModelSource.parse(args.model)
    with _upload_bars() as bars:
        result = publish(source, args.bucket, args.key, hub_progress=_is_tty(), upload_progress=bars)
    verb = "uploaded" if result.uploaded else "already published (nothing uploaded)"
    revision = f" @ {result.source_revision}" if result.source_revision else ""
    _emit(
        result.as_dict(),
        as_json=args.json,
        text=(
            f"{verb}: {result.s3_uri}\n  sha256 {result.sha256}\n  size {result.size}\n"
            f"  source {result.source}{revision}"
        ),
    )
    return 0


def _pack(args: argparse.Namespace) -> int:
    info = pack(args.model_dir, args.out)
    payload = {"path": str(info.path), "sha256": info.sha256, "size": info.size}
    _emit(payload, as_json=args.json, text=f"{info.sha256}  {info.size}  {info.path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sentiment-model`` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(f"sentiment-model: error: {one_line(str(exc))} (see --help)\n")
        return EXIT_USAGE
    command = _publish if args.command == "publish" else _pack
    return run_command("sentiment-model", lambda: command(args), (PublishError, BundleError))


if __name__ == "__main__":
    sys.exit(main())
