"""``sentiment-local``: run the whole pipeline, or classify a few texts, on this machine.

    sentiment-local run [--model-dir DIR | --model ID[@REVISION]] [--feed PATH_OR_URL] [--endpoint-url URL] [--json]
    sentiment-local classify "some text" ... [--model-dir DIR | --model ID[@REVISION]] [--json]
    sentiment-local dashboard [--port N] [--state-dir DIR]

Errors a user can act on end the command with a one-line message on stderr and exit code 1 (2 for
bad arguments); ``--json`` prints exactly one JSON object on stdout, everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from sentiment_local.pipeline import PipelineError, RunOptions, RunReport, run

EXCERPT_CHARS = 72


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model-dir", type=Path, help="a local Hugging Face model directory (offline machines)")
    group.add_argument(
        "--model", metavar="ID[@REVISION]", help="a Hugging Face hub model (default: the pinned DistilBERT SST-2)"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="local state and caches (default: ~/.cache/sentiment-analyzer/local)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argument type for an integer in ``low..high``: anything else is a usage error, not a traceback later."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _text(value: str) -> str:
    """A TEXT argument; bytes that are not UTF-8 arrive as lone surrogates, which the tokenizer cannot take."""
    from pydantic import TypeAdapter, ValidationError

    from sentiment_shared.schemas import Utf8Str, describe_errors

    try:
        return TypeAdapter(Utf8Str).validate_python(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(describe_errors(exc).removeprefix("payload: ")) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentiment-local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run ingestion → topic → queue → analysis on an embedded AWS emulator")
    _add_model_args(run_p)
    run_p.add_argument("--feed", metavar="PATH_OR_URL", help="an RSS/Atom feed (default: the bundled sample feed)")
    run_p.add_argument(
        "--endpoint-url", help="use this AWS endpoint (LocalStack, a moto server) instead of starting one"
    )
    run_p.add_argument("--fresh", action="store_true", help="forget items stored by earlier runs")
    run_p.add_argument(
        "--batch-size", type=_int_between(1, 10), default=None, help="SQS batch size, 1-10 (default: the stack's)"
    )
    run_p.add_argument("--verbose", "-v", action="store_true", help="show the functions' logs and metrics")
    cls_p = sub.add_parser("classify", help="classify texts with the model (same caches as run)")
    cls_p.add_argument("texts", nargs="+", metavar="TEXT", type=_text)
    _add_model_args(cls_p)
    dash_p = sub.add_parser("dashboard", help="serve the dashboard over the last run's saved state on 127.0.0.1")
    dash_p.add_argument(
        "--port", type=_int_between(0, 65535), default=8080, help="TCP port on 127.0.0.1 (default 8080; 0: any free)"
    )
    dash_p.add_argument(
        "--state-dir", type=Path, help="local state (default: ~/.cache/sentiment-analyzer/local), as given to run"
    )
    return parser


def dashboard_command(state_dir: Path | None) -> str:
    """The command that opens the dashboard over a run's state (printed after ``run``).

    Run through ``uv run`` (uv sets ``UV`` for what it starts), ``sentiment-local`` is on the PATH of
    that process only, not of the user's shell: the command to paste is ``uv run sentiment-local ...``.
    """
    import os
    import shlex

    prefix = "uv run " if os.environ.get("UV") else ""
    return f"{prefix}sentiment-local dashboard" + (f" --state-dir {shlex.quote(str(state_dir))}" if state_dir else "")


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[TextIO]:
    """Keep stdout for the command's own output: handler logs and EMF lines go to stderr meanwhile."""
    real = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        yield real


def _print_report(report: RunReport, out: TextIO) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out)
    table = Table(title="Items analyzed in this run", show_lines=False)
    table.add_column("text")
    table.add_column("sentiment")
    table.add_column("score", justify="right")
    colours = {"positive": "green", "negative": "red", "neutral": "yellow"}
    for r in report.results:
        sentiment = r.sentiment or "FAILED"
        table.add_row(
            _excerpt(r.text),
            f"[{colours.get(sentiment, 'bold red')}]{sentiment}[/]",
            f"{r.score:.3f}" if r.score is not None else "-",
        )
    console.print(table)
    data = report.as_dict()
    summary = Table(title="Summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    for key in ("ingested", "duplicates", "analyzed", "positive", "negative", "neutral", "failed", "dlq_depth"):
        summary.add_row(key, str(data[key]))
    for key in ("skipped", "truncated"):  # entries without text or id, texts cut at MAX_TEXT_CHARS
        if report.ingestion.get(key):
            summary.add_row(f"{key} (feed entries)", str(report.ingestion[key]))
    summary.add_row("throughput (texts/s)", f"{report.throughput:.1f}")
    for key, seconds in data["timings"].items():
        summary.add_row(f"time: {key} (s)", f"{seconds:.2f}")
    for key, value in report.cold_start.items():
        summary.add_row(f"cold start: {key}", str(value))
    summary.add_row("model", f"{report.model.s3_uri} sha256:{report.model.sha256[:12]}…")
    cost = data.get("cost_per_1000_items")
    if cost:
        summary.add_row(
            "cost per 1,000 items (USD)",
            f"{cost['total_usd']:.4f} ({cost['basis']})",
        )
    console.print(summary)
    for polled in report.ingestion.get("feeds", []):
        if isinstance(polled, dict) and polled.get("warning"):
            console.print(f"[yellow]feed {escape(str(polled.get('url')))}: {escape(str(polled['warning']))}[/]")
    if report.failed:
        console.print(f"[bold red]{report.failed} item(s) failed and were parked in the DLQ[/]")


def _run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    options = RunOptions(
        model_dir=args.model_dir,
        model=args.model,
        feed=args.feed,
        endpoint_url=args.endpoint_url,
        state_dir=args.state_dir,
        fresh=args.fresh,
        **({"batch_size": args.batch_size} if args.batch_size else {}),
    )
    if not args.verbose:
        logging.getLogger().setLevel(logging.ERROR)
    interactive = sys.stderr.isatty() and not args.json
    with _stdout_to_stderr() as out:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            disable=not interactive,
            transient=True,
        )
        with progress:
            task = progress.add_task("starting", total=None)
            batches = progress.add_task("records analyzed", total=None, visible=False)

            def step(message: str) -> None:
                progress.update(task, description=message)
                if not interactive and not args.json:
                    print(f"→ {message}", file=sys.stderr)

            def on_batch(size: int, failed: int) -> None:
                progress.update(batches, visible=True, advance=size - failed)

            report = run(options, step=step, on_batch=on_batch, quiet=not args.verbose)
    if args.json:
        json.dump({**report.as_dict(), "dashboard_command": dashboard_command(args.state_dir)}, out, ensure_ascii=False)
        out.write("\n")
    else:
        _print_report(report, out)
        out.write(f"Open the dashboard: {dashboard_command(args.state_dir)}\n")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from sentiment_dashboard.render import LOCAL_EMPTY_HINT
    from sentiment_dashboard.server import make
    from sentiment_local.dashboard import local_state
    from sentiment_local.state import default_state_dir

    state_dir = (args.state_dir or default_state_dir()).expanduser()
    logging.getLogger().setLevel(logging.ERROR)
    import shlex

    hint = LOCAL_EMPTY_HINT + (f" --state-dir {shlex.quote(str(state_dir))}" if args.state_dir else "")
    with local_state(state_dir) as state:
        try:
            server = make(state.summary, args.port, load_items=state.items, empty_hint=hint, cache_ttl=0)
        except OSError as exc:
            raise DashboardError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
        with server:
            if state.has_state:
                note = " (counters rebuilt from the saved items)" if state.backfilled else ""
                print(f"{state.restored} saved items loaded from {state_dir}{note}", file=sys.stderr)
            else:
                print(f"No saved state in {state_dir} yet: run `{hint}`, then reload the page", file=sys.stderr)
            print("The page shows each new run on reload.", file=sys.stderr)
            print(f"Dashboard: http://127.0.0.1:{server.server_port}/  (Ctrl-C to stop)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
                server.serve_forever()
    return 0


class DashboardError(RuntimeError):
    """The local dashboard cannot start (port in use); the message says why."""


def _classify(args: argparse.Namespace) -> int:
    from sentiment_local.pipeline import classify_texts

    with _stdout_to_stderr() as out:
        predictions = classify_texts(args.texts, model_dir=args.model_dir, model=args.model, state_dir=args.state_dir)
    rows: list[dict[str, Any]] = [{"text": t, **p} for t, p in zip(args.texts, predictions, strict=True)]
    if args.json:
        json.dump(rows, out, ensure_ascii=False)
        out.write("\n")
    else:
        for row in rows:
            out.write(f"{row['sentiment']:<8} {row['score']:.3f}  {row['label']:<9} {_excerpt(row['text'])}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sentiment_shared.cli_errors import run_command
    from sentiment_shared.model_bundle import BundleError
    from sentiment_shared.model_publish import PublishError, SourceUnavailableError

    def hint(exc: BaseException) -> str:
        if isinstance(exc, SourceUnavailableError) and "--model-dir" not in str(exc):
            return "; on an offline machine pass --model-dir DIR (a local Hugging Face model directory)"
        return ""

    command = {"run": _run, "classify": _classify, "dashboard": _dashboard}[args.command]
    own = (PipelineError, PublishError, BundleError, DashboardError)
    return run_command("sentiment-local", lambda: command(args), own, hint)


if __name__ == "__main__":
    sys.exit(main())
