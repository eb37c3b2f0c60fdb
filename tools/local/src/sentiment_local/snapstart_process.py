"""One analysis process that lives through SnapStart's lifecycle, as a real snapshot (CRIU) can take it.

    python -m sentiment_local.snapstart_process CONTROL_DIR

What awslambdaric's bootstrap does when ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` (set it in the
environment, with the function's ``MODEL_*`` settings), driven through files in ``CONTROL_DIR`` instead of
the Runtime API. (With another init type the same steps run over an on-demand INIT, which loads nothing:
the baseline of a snapshot that holds only the imported modules.)

1. INIT: import ``sentiment_analysis.handler`` (under snap-start it fetches, verifies, loads and warms
   the model and registers its hooks with ``snapshot_restore_py``);
2. the before-snapshot hooks, through awslambdaric's own hook runner;
3. write ``CONTROL_DIR/ready`` and wait for ``CONTROL_DIR/restore`` (where ``/runtime/restore/next``
   blocks: a snapshot taken now resumes here; polled every 2 ms);
4. the after-restore hooks (awslambdaric's runner again);
5. answer ``CONTROL_DIR/request.json`` (an invoke event) into ``CONTROL_DIR/answer.json`` (written whole,
   then renamed), with what the process saw: its lifecycle log messages in order, the AWS API calls made
   after the restore, whether the boto3 client and the random state are the snapshot's, and timings.

The process opens no file for writing before the restore (run it with output appended to a log, and
with no terminal, e.g. under ``setsid``), so a CRIU dump of it can be restored after the log grew.
Used by ``benchmarks.analysis_restore`` and tests/functional/test_analysis_snapstart.py.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

POLL_S = 0.002


def _record_messages(messages: list[str]) -> None:
    """Append the message of every record the analysis code logs from now on (whatever its handlers: the
    handler module gives its loggers Powertools' handlers, replacing any added before)."""
    handle = logging.Logger.handle

    def recording(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.name.startswith("sentiment_analysis"):
            messages.append(record.getMessage())
        handle(self, record)

    logging.Logger.handle = recording  # type: ignore[method-assign]


def _record_api_calls(calls: list[str]) -> None:
    """Append ``service.Operation`` of every boto3 API call from now on (any client, old or new)."""
    from botocore.client import BaseClient

    make_api_call = getattr(BaseClient, "_make_api_call")  # noqa: B009 - private, untyped in the stubs

    def recording(self: BaseClient, operation_name: str, api_params: Any) -> Any:
        calls.append(f"{self.meta.service_model.service_name}.{operation_name}")
        return make_api_call(self, operation_name, api_params)

    setattr(BaseClient, "_make_api_call", recording)  # noqa: B010


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(POLL_S)


def run(control: Path) -> dict[str, Any]:
    """Steps 1-5 above; returns (and writes) the answer."""
    started = time.perf_counter()
    messages: list[str] = []
    _record_messages(messages)
    from awslambdaric import lambda_runtime_hooks_runner

    from sentiment_analysis import handler
    from sentiment_local.esm import Handler, LocalLambdaContext
    from sentiment_shared import aws

    init_s = time.perf_counter() - started
    snapshot_client = aws.client("s3")  # the cached client INIT's model fetch used
    lambda_runtime_hooks_runner.run_before_snapshot()
    random_state, torch_seed = random.getstate(), _torch_seed()
    messages.append("-- snapshot --")
    (control / "ready").touch()
    _wait_for(control / "restore")  # a restored snapshot resumes in this loop
    restored = time.perf_counter()
    calls: list[str] = []
    _record_api_calls(calls)
    lambda_runtime_hooks_runner.run_after_restore()
    hooks_done = time.perf_counter()
    event = json.loads((control / "request.json").read_text(encoding="utf-8"))
    invoke: Handler = handler.handler
    response = invoke(event, LocalLambdaContext())
    answered = time.perf_counter()
    loaded = handler.models.loaded
    answer = {
        "response": response,
        "messages": messages,
        "api_calls_after_restore": calls,
        "new_s3_client": aws.client("s3") is not snapshot_client,
        "random_state_reseeded": random.getstate() != random_state,
        "torch_seed_reseeded": _torch_seed() != torch_seed,
        "precision": loaded.precision if loaded else None,
        "init_s": init_s,
        "after_restore_hooks_s": hooks_done - restored,
        "restore_to_answer_s": answered - restored,
        "restored_at_unix": time.time() - (answered - restored),
    }
    tmp = control / "answer.json.tmp"
    tmp.write_text(json.dumps(answer), encoding="utf-8")
    tmp.rename(control / "answer.json")
    return answer


def _torch_seed() -> int | None:
    torch = sys.modules.get("torch")
    return int(torch.initial_seed()) if torch is not None else None


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m sentiment_local.snapstart_process CONTROL_DIR")
    control = Path(sys.argv[1])
    if not control.is_dir():
        raise SystemExit(f"not a directory: {control}")
    run(control)


if __name__ == "__main__":
    main()
