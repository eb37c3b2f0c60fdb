"""SnapStart restore of the analysis function: from a restore to the first answer, in one process and with CRIU.

Each run starts ``sentiment_local.snapstart_process`` (awslambdaric's snap-start sequence: INIT, the
before-snapshot hooks, a wait where ``/runtime/restore/next`` blocks, the after-restore hooks, one
``{"texts": [...]}`` invocation) against a moto server holding the model bundle. After the before-snapshot
hooks the model object is deleted from S3, so the copy must answer from what INIT loaded.

* in one process: the wait ends at once (no snapshot); restore-to-first-result is timed inside the process,
  from the end of the wait to the handler's answer (after-restore hooks included).
* CRIU: the process is dumped after the hooks (``criu dump --tcp-close``: the process is killed), the
  object is deleted, and the process is restored in a fresh PID namespace
  (``unshare -p -f --mount-proc criu restore --tcp-close``); timed from launching the restore command to the
  answer file appearing.
* CRIU baseline (before SnapStart hooks, "the dump holds only imported modules"): the same process with
  an on-demand INIT (the handler module imported, no model), so after the restore the first invocation
  fetches and loads the model (the object stays in S3 for it).

CRIU 4.x is needed (Debian's 3.17 fails ``criu check`` on kernels >= 6.13); it is not in CI (no network).
Build it once, then run this as root (see README "SnapStart"):

    git clone https://github.com/checkpoint-restore/criu && cd criu && git checkout v4.2   # or a mirror
    apt-get install libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler \
        python3-protobuf libnl-3-dev libcap-dev libnet1-dev pkg-config libaio-dev libgnutls28-dev \
        libnftables-dev libbsd-dev uuid-dev
    make -j2 criu && ./criu/criu check
    CRIU=$PWD/criu/criu uv run python -m benchmarks.analysis_restore [--runs 3] [--model full|shared] \
        [--python /path/to/venv-with-cpu-torch/bin/python]

Without CRIU 4.x the CRIU rows are skipped with a message and the in-process rows still run.
Done when (issue 23): in one process <= 0.5 s; with CRIU, restore command to first answer <= 1.0 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.host import banner

BUCKET = "bench-restore"
KEY = "distilbert/v1.0.0/model.tar"
TEXTS = ["What a wonderful, moving film.", "A dull, tedious mess.", "It was fine, I guess."]
IN_PROCESS_DONE_WHEN_S = 0.5
CRIU_DONE_WHEN_S = 1.0


def find_criu(path: str | None) -> tuple[str | None, str]:
    """The criu binary to use and its version line, or None and why not."""
    candidate = path or shutil.which("criu")
    if candidate is None:
        return None, "criu not found (set CRIU=/path/to/criu or put it on PATH)"
    try:
        out = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{candidate} --version failed: {exc}"
    version = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version")), "?")
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 4:
        return None, f"{candidate} is CRIU {version}; CRIU 4.x is needed (3.17 fails on kernels >= 6.13)"
    if os.geteuid() != 0:
        return None, "CRIU dump/restore needs root"
    if shutil.which("unshare") is None:
        return None, "unshare (util-linux) not found"
    return candidate, version


class Run:
    """One ``snapstart_process``: started under ``setsid`` with no terminal, output appended to a log."""

    python = sys.executable
    """The function process's interpreter (``--python``)."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        self.control = self.dir / "control"
        self.control.mkdir()
        self.log = self.dir / "process.log"
        with self.log.open("ab") as out:  # O_APPEND: the log may grow between a dump and its restore
            self.process = subprocess.Popen(
                [self.python, "-m", "sentiment_local.snapstart_process", str(self.control)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # setsid: a session leader without a controlling terminal
            )

    def wait_for(self, name: str, timeout_s: float, watch: subprocess.Popen[bytes] | None = None) -> None:
        watched = watch or self.process
        deadline = time.monotonic() + timeout_s
        while not (self.control / name).exists():
            if watched.poll() is not None and not (self.control / name).exists():
                raise SystemExit(f"process exited ({watched.returncode}) before {name}:\n{self._tail()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no {name} after {timeout_s} s:\n{self._tail()}")
            time.sleep(0.001)

    def release(self) -> None:
        (self.control / "request.json").write_text(json.dumps({"texts": TEXTS}), encoding="utf-8")
        (self.control / "restore").touch()

    def answer(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads((self.control / "answer.json").read_text(encoding="utf-8"))
        response = answer["response"]
        if response.get("statusCode") != 200 or response.get("count") != len(TEXTS):
            raise SystemExit(f"wrong answer: {response}")
        return answer

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()


def in_process(work: Path, env: dict[str, str], s3: Any) -> dict[str, Any]:
    run = Run(work, env)
    try:
        run.wait_for("ready", 600)
        s3.delete_object(Bucket=BUCKET, Key=KEY)
        run.release()
        run.wait_for("answer.json", 120)
        run.process.wait(timeout=60)
    finally:
        run.stop()
    return run.answer()


def with_criu(work: Path, env: dict[str, str], s3: Any, criu: str, *, delete_model: bool) -> dict[str, Any]:
    run = Run(work, env)
    images = run.dir / "images"
    images.mkdir()
    try:
        run.wait_for("ready", 600)
        started = time.perf_counter()
        dump = subprocess.run(
            [criu, "dump", "-t", str(run.process.pid), "-D", str(images), "--tcp-close", "-o", "dump.log"],
            capture_output=True,
            text=True,
            check=False,
        )
        dump_s = time.perf_counter() - started
        if dump.returncode != 0:
            raise SystemExit(f"criu dump failed ({dump.returncode}); see {images / 'dump.log'}")
        run.process.wait(timeout=30)  # criu dump kills the dumped process
        if delete_model:
            s3.delete_object(Bucket=BUCKET, Key=KEY)
        run.release()
        started = time.perf_counter()
        command = [criu, "restore", "-D", str(images), "--tcp-close", "-o", "restore.log"]
        restore = subprocess.Popen(
            ["unshare", "-p", "-f", "--mount-proc", *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run.wait_for("answer.json", 120, watch=restore)
        restore_to_answer_s = time.perf_counter() - started
        if restore.wait(timeout=60) != 0:
            raise SystemExit(f"criu restore exited {restore.returncode}; see {images / 'restore.log'}")
    finally:
        run.stop()
    image_bytes = sum(p.stat().st_size for p in images.rglob("*") if p.is_file())
    answer = run.answer()
    answer.update(dump_s=dump_s, image_mb=image_bytes / 1e6, criu_restore_to_answer_s=restore_to_answer_s)
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", choices=("full", "shared"), default="full", help="full-size or the shared model")
    parser.add_argument("--criu", default=os.environ.get("CRIU"), help="criu 4.x binary (default: $CRIU, then PATH)")
    parser.add_argument(
        "--python",
        help="interpreter for the function process, e.g. a venv with the image's CPU-only torch (the dev venv's "
        "CUDA build adds ~140 MB to every snapshot); it needs sentiment-analysis and awslambdaric installed",
    )
    args = parser.parse_args()
    if args.python:
        Run.python = args.python

    from benchmarks.bundle_formats import SHARED_MODEL, build_full_size_model
    from sentiment_local.emulator import aws_environment, embedded_moto
    from sentiment_shared import aws
    from sentiment_shared.model_bundle import pack
    from sentiment_shared.model_compact import compact_model_dir

    criu, criu_note = find_criu(args.criu)
    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    model_dir = build_full_size_model(root / "distilbert-full") if args.model == "full" else SHARED_MODEL
    work = Path(tempfile.mkdtemp(prefix="restore-", dir=root if root.is_dir() else None))
    results: dict[str, list[dict[str, Any]]] = {"in one process": [], "CRIU": [], "CRIU baseline (on-demand INIT)": []}
    try:
        with embedded_moto() as endpoint, aws_environment(endpoint):
            s3 = aws.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            bundle = pack(compact_model_dir(model_dir, work / "compact"), work / "model.tar")  # as publish() does
            body = bundle.path.read_bytes()

            def upload() -> None:
                s3.put_object(Bucket=BUCKET, Key=KEY, Body=body, Metadata={"sha256": bundle.sha256})

            def env(init_type: str) -> dict[str, str]:
                cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
                values = {
                    **os.environ,
                    "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",  # threads sized as on Lambda (1)
                    "MODEL_BUCKET": BUCKET,
                    "MODEL_KEY": KEY,
                    "MODEL_SHA256": bundle.sha256,
                    "MODEL_CACHE_DIR": str(cache),
                    "ITEMS_TABLE": "unused",
                    "POWERTOOLS_METRICS_DISABLED": "true",
                    "MALLOC_MMAP_THRESHOLD_": "16777216",  # as the image sets it (services/analysis/Dockerfile)
                }
                if args.python:  # sentiment_local (the process driver) from this checkout
                    local_src = Path(__file__).resolve().parent.parent / "tools" / "local" / "src"
                    values["PYTHONPATH"] = os.pathsep.join(filter(None, [str(local_src), values.get("PYTHONPATH")]))
                values.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled once, as the image does
                values["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
                return values

            upload()
            in_process(work, env("snap-start"), s3)  # untimed: compile bytecode into the private pycache
            for _ in range(args.runs):
                upload()
                results["in one process"].append(in_process(work, env("snap-start"), s3))
                if criu is not None:
                    upload()
                    results["CRIU"].append(with_criu(work, env("snap-start"), s3, criu, delete_model=True))
                    upload()
                    base = with_criu(work, env("on-demand"), s3, criu, delete_model=False)
                    results["CRIU baseline (on-demand INIT)"].append(base)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, args, criu, criu_note)


def _torch_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('torch'))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def _report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, criu: str | None, note: str) -> None:
    print(f"\n{banner()}")
    model = "full-size DistilBERT (compact bundle)" if args.model == "full" else "shared small model (compact bundle)"
    print(f"\nSnapStart restore, {model}, 1 thread, median of {args.runs}; {len(TEXTS)} texts in the first invocation")
    print(f"function process: {Run.python} (torch {_torch_version(Run.python)})")
    print(f"CRIU: {note if criu is None else criu + ' ' + note}")
    for name, rows in results.items():
        if not rows:
            print(f"\n{name}: SKIPPED ({note})" if name != "in one process" else f"\n{name}: no runs")
            continue
        print(f"\n{name}")
        rows_out = [("INIT (import + fetch + load + warm-up, inside the process), s", _median(rows, "init_s"))]
        if "dump_s" in rows[0]:
            rows_out += [
                ("criu dump, s", _median(rows, "dump_s")),
                ("image size, MB", _median(rows, "image_mb")),
                ("restore command -> first answer, s", _median(rows, "criu_restore_to_answer_s")),
            ]
        rows_out += [
            ("after-restore hooks (inside), s", _median(rows, "after_restore_hooks_s")),
            ("restore -> first answer (inside the process), s", _median(rows, "restore_to_answer_s")),
        ]
        for label, value in rows_out:
            print(f"  {label:58s} {value:8.3f}")
        calls = sorted({c for r in rows for c in r["api_calls_after_restore"]})
        print(f"  AWS calls after the restore: {', '.join(calls) or 'none'}; precision: {rows[0]['precision']}")
        print(f"  answers: {[x['sentiment'] for x in rows[0]['response']['results']]}")
    print("\nDone when")
    inside = _median(results["in one process"], "restore_to_answer_s")
    verdict = "PASS" if inside <= IN_PROCESS_DONE_WHEN_S else "FAIL"
    print(f"  in one process, restore -> first result <= {IN_PROCESS_DONE_WHEN_S} s: {inside:.3f} s  {verdict}")
    if results["CRIU"]:
        wall = _median(results["CRIU"], "criu_restore_to_answer_s")
        verdict = "PASS" if wall <= CRIU_DONE_WHEN_S else "FAIL"
        base = _median(results["CRIU baseline (on-demand INIT)"], "criu_restore_to_answer_s")
        limit = f"<= {CRIU_DONE_WHEN_S} s"
        print(f"  CRIU, restore command -> first answer {limit}: {wall:.2f} s  {verdict} (baseline {base:.2f} s)")
    else:
        print(f"  CRIU: SKIPPED ({note})")
    print(f"\n{banner()}")


if __name__ == "__main__":
    main()
