"""``sentiment-dashboard``: operate the dashboard's counters on a real (or emulated) items table.

    sentiment-dashboard backfill --table NAME [--json]
    sentiment-dashboard summary --table NAME

``backfill`` recomputes every counter from the items (run it once on a table that predates the
counters, or whenever they are in doubt, while the queue's event source mapping is disabled);
``summary`` prints ``GET /api/summary``'s JSON for the table. AWS credentials and region come from the
usual environment (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sentiment-dashboard", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    back = sub.add_parser("backfill", help="recompute the counters from the items")
    back.add_argument("--table", required=True)
    back.add_argument("--json", action="store_true")
    show = sub.add_parser("summary", help="print the dashboard's JSON summary")
    show.add_argument("--table", required=True)
    args = parser.parse_args(argv)

    from sentiment_shared.cli_errors import run_command
    from sentiment_shared.dal.backfill import backfill
    from sentiment_shared.dal.read_model import read_summary

    def command() -> int:
        if args.command == "backfill":
            report = backfill(args.table)
            if args.json:
                print(json.dumps(report.as_dict()))
            else:
                print(
                    f"{report.items} items, {report.analyzed} analyzed "
                    f"({report.counts.positive} positive, {report.counts.negative} negative, "
                    f"{report.counts.neutral} neutral); {report.days} day and {report.sources} source counters "
                    f"written, {report.removed} stale removed, {report.indexed} items indexed"
                )
        else:
            print(json.dumps(read_summary(args.table).as_dict(), indent=2, ensure_ascii=False))
        return 0

    return run_command("sentiment-dashboard", command)


if __name__ == "__main__":
    sys.exit(main())
