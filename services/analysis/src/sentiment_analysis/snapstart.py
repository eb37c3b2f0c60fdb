"""SnapStart for the analysis function: load at INIT, snapshot, and make a restored copy its own.

Lambda's Python base images (3.12+) run the runtime interface client ``awslambdaric``; when
``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` it imports the handler module (INIT), runs the
before-snapshot hooks (last registered first), calls ``/runtime/restore/next`` (the snapshot is taken
there and the call returns in the restored copy), runs the after-restore hooks (in registration order),
then polls for invocations. Hooks are registered with ``snapshot_restore_py`` (AWS's "Snapshot Restore
for Python", shipped with the base image and awslambdaric).

* INIT under SnapStart (:func:`install`): fetch, verify, load and warm the model (one inference) so the
  snapshot holds it; AWS allows up to 15 minutes of init when it takes a snapshot.
* Without SnapStart (``on-demand``): nothing at import; the first invocation loads the model as before, so
  on-demand init stays well under Lambda's 10 s limit.
* Before the snapshot: close and forget every cached boto3 client (no pooled connection in the snapshot).
* After a restore: forget the clients again (new clients and sessions, credentials read again), re-seed
  ``random``, torch's generator and OpenSSL's from the OS (every copy of a snapshot starts from the same
  state), and resolve ``precision="auto"`` again on the CPU the copy now runs on (~0.1-0.3 s for the
  full-size DistilBERT). No S3 request, no model load.

Nothing unique is made at INIT: no ids, tokens or timestamps are kept (Powertools' Logger and Metrics stamp
per record and per flush; its cold-start flags flip on the first invocation, which follows the restore).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sentiment_analysis.core import LoadedModel, ModelProvider
from sentiment_shared import aws
from sentiment_shared.settings import AnalysisSettings, analysis_settings

log = logging.getLogger(__name__)

INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
"""Set by Lambda for INIT: ``on-demand``, ``provisioned-concurrency`` or ``snap-start``."""
SNAP_START = "snap-start"


def is_snap_start(environ: Mapping[str, str] | None = None) -> bool:
    """True when this INIT will be snapshotted (Lambda says so in ``AWS_LAMBDA_INITIALIZATION_TYPE``)."""
    return (os.environ if environ is None else environ).get(INITIALIZATION_TYPE) == SNAP_START


def reseed_randomness() -> None:
    """Re-seed every process-wide generator from the OS: a restored copy must not replay the snapshot's.

    ``random`` (the retry jitter), torch's and numpy's default generators, and OpenSSL's DRBG (TLS client
    randoms of the new AWS connections; it detects forks, not restores) get fresh entropy from the kernel.
    """
    random.seed()  # from os.urandom
    ssl = sys.modules.get("ssl")
    if ssl is not None:
        ssl.RAND_add(os.urandom(64), 64.0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()  # a non-deterministic seed for the default CPU generator
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def release_free_memory() -> bool:
    """glibc's ``malloc_trim(0)``: return the heap INIT freed (download buffers, the dequantised copies of
    the weights) to the OS. False where there is no glibc (nothing to do)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


@dataclass
class Lifecycle:
    """The SnapStart steps over one container's :class:`~sentiment_analysis.core.ModelProvider`."""

    provider: ModelProvider
    settings: Callable[[], AnalysisSettings] = analysis_settings

    def init(self) -> LoadedModel:
        """INIT under SnapStart: fetch, verify, load and warm the model now (a failure fails INIT)."""
        started = time.perf_counter()
        model = self.provider.preload(self.settings())
        log.info(
            "Model ready for the snapshot",
            extra={"init_ms": round((time.perf_counter() - started) * 1000, 1), "model_version": model.model_version},
        )
        return model

    def before_snapshot(self) -> None:
        """Close and forget the boto3 clients INIT used (the S3 client of the model fetch), and hand the
        memory INIT freed back to the OS, so the snapshot (and every restore's read of it) is smaller."""
        aws.reset_clients(close=True)
        gc.collect()
        trimmed = release_free_memory()
        log.info("AWS clients closed for the snapshot", extra={"malloc_trim": trimmed})

    def after_restore(self) -> None:
        """Make this restored copy its own: new clients, fresh randomness, precision measured on this CPU."""
        started = time.perf_counter()
        aws.reset_clients(close=True)
        reseed_randomness()
        model = self.provider.after_restore()
        log.info(
            "Restored from snapshot",
            extra={
                "after_restore_ms": round((time.perf_counter() - started) * 1000, 1),
                "model_version": model.model_version if model else None,
                "precision": model.precision if model else None,
            },
        )


def install(provider: ModelProvider, *, environ: Mapping[str, str] | None = None) -> Lifecycle:
    """Register the hooks with ``snapshot_restore_py`` and, under SnapStart, load the model now.

    Called once at the handler module's import. The hooks are registered whatever the init type (the
    runtime client runs them only under SnapStart); without ``snapshot_restore_py`` (an environment without
    awslambdaric) nothing is registered, which is an error only under SnapStart.
    """
    lifecycle = Lifecycle(provider)
    snap_start = is_snap_start(environ)
    try:
        import snapshot_restore_py  # type: ignore[import-untyped]
    except ImportError:
        if snap_start:
            raise
        log.debug("snapshot_restore_py is not installed: SnapStart hooks not registered")
    else:
        snapshot_restore_py.register_before_snapshot(lifecycle.before_snapshot)
        snapshot_restore_py.register_after_restore(lifecycle.after_restore)
    if snap_start:
        lifecycle.init()
    return lifecycle
