"""Which precision the linear layers run at: ``fp32``, ``int8``, or ``auto``, measured on the CPU at hand.

``precision="auto"`` (the default) measures, at load, the model's own linear shapes as int8 and as fp32
GEMMs on the CPU it runs on, warm (the first ``torch._int_mm`` call JIT-compiles its kernel) and at a real
batch's token count, and takes int8 only where it is measured faster (log line "Precision chosen" with the
ratio). ``torch._int_mm`` is fast only with VNNI / AVX-512 kernels; on CPUs without them it ranges from
fp32's speed to a reference loop 40-60x slower, so a fixed int8 default could turn a batch into a timeout.
A SnapStart restore measures again
(:meth:`~sentiment_analysis.classifier.SentimentClassifier.remeasure_precision`) and converts the layers if
the answer changed.

The precision names are :data:`sentiment_shared.stack.Precision` (``MODEL_PRECISION`` reads the same);
:func:`checked_precision` is the one check of a value that did not come through a type checker.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sentiment_analysis.int8 import frozen_linear, int8_linear_class
from sentiment_shared.stack import PRECISIONS, Precision, ResolvedPrecision

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_PRECISION: Precision = "auto"
"""int8 only where it is measured faster than fp32 on this CPU at load, else fp32 (README "Performance":
int8 is ~2x fp32 with VNNI kernels and 40-60x slower without them; same SST-2 dev accuracy)."""

INT8_MIN_SPEEDUP = 1.2
"""``auto`` takes int8 when its linear layers measure at least this much faster than fp32's: the GEMMs are
most but not all of a forward pass, and a marginal win is within timing noise."""


def checked_precision(value: str) -> Precision:
    """``value`` as a :data:`Precision`, or a ``ValueError`` naming the choices."""
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PrecisionChoice:
    """What ``auto`` (or an explicit precision) resolved to, and why."""

    precision: ResolvedPrecision
    requested: Precision
    int8_speedup: float | None
    """fp32 time / int8 time of the model's linear layers measured at load (None: not measured)."""
    calibration_ms: float = 0.0


def linear_shapes(model: torch.nn.Module) -> dict[tuple[int, int], int]:
    """``(in_features, out_features)`` of every linear layer in ``model`` (fp32 ``nn.Linear`` or ``Int8Linear``)
    -> how many layers have it."""
    import torch

    linear_types = (torch.nn.Linear, int8_linear_class())
    shapes: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, linear_types):
            key = (int(getattr(module, "in_features")), int(getattr(module, "out_features")))  # noqa: B009
            shapes[key] = shapes.get(key, 0) + 1
    return shapes


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


PROBE_ROWS = 32
"""Tokens in the early-exit probe: enough that the GEMM, not int8's per-call quantisation overhead, decides
(at 8 tokens a loaded host measured a fast AVX2 int8 kernel 4x slower than fp32); where int8 has no fast
kernel (~1 GOP/s) the probe costs tens of ms and saves the full measurement's hundreds."""
CALIBRATION_ROWS = 256
"""Tokens per GEMM in the full measurement: what one packed micro-batch of real traffic holds (10 SST-2 dev
texts are ~250 tokens, 32 are ~800; the linear layers of the packed forward see exactly these rows)."""
INT8_CLEARLY_SLOWER = 8.0
"""The probe ends the measurement when warm int8 is this many times slower than warm fp32 (a reference loop:
40-60x; fast kernels measure 0.5-10x)."""


DECISIVE = 1.5
"""The full measurement stops after two rounds (of ``repeats``) once int8 is this factor above the threshold or
below it, after one round once it is this factor squared (2.25) away, e.g. 5x with VNNI. Near the threshold
either precision is within ~20 % of the other, so more rounds buy little."""


def measure_int8_speedup(
    shapes: Mapping[tuple[int, int], int], *, repeats: int = 3, rows: int = CALIBRATION_ROWS
) -> float:
    """fp32 time / int8 time of the linear layers ``shapes`` (count-weighted), timed on this CPU now.

    Every timing is of WARM kernels: every layer runs once untimed first (the first ``torch._int_mm`` call
    of a process JIT-compiles oneDNN's kernel: ~10 ms, 100x a warm call, which made a cold probe measure
    0.01x on a CPU where int8 is 2x faster); fp32 and int8 calls alternate, so a burst of load on a shared
    host slows both, and each keeps its best (preemption only ever adds time).

    First a small probe on the commonest shape: if warm int8 is already :data:`INT8_CLEARLY_SLOWER` x
    slower (no VNNI / AVX-512 kernel: ``torch._int_mm`` can be a reference loop), that ratio is the answer
    and the load spends a few ms. Otherwise every shape is timed with ``rows`` tokens
    (:data:`CALIBRATION_ROWS`, a real batch) through the real :class:`Int8Linear` forward (activation
    quantisation included) and ``nn.Linear``, in rounds over all shapes (at most ``repeats``), stopping once
    the ratio is clearly away from :data:`INT8_MIN_SPEEDUP` (:data:`DECISIVE`). Weights are views of one
    random buffer (no per-layer initialisation to pay for).
    """
    import torch

    if not shapes:
        return 0.0
    int8_linear = int8_linear_class()
    generator = torch.Generator().manual_seed(0)
    size = max(*(in_f * out_f for in_f, out_f in shapes), max(in_f for in_f, _ in shapes) * rows)
    noise = torch.empty(size).uniform_(-0.1, 0.1, generator=generator)  # values never change a GEMM's time

    def layers(in_f: int, out_f: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        linear = frozen_linear(noise[: in_f * out_f].view(out_f, in_f), noise[:out_f].clone())  # views of noise
        return linear, int8_linear.from_linear(linear)  # type: ignore[attr-defined]

    def inputs(in_f: int, n_rows: int) -> torch.Tensor:
        return noise[: n_rows * in_f].view(n_rows, in_f) * 10

    pairs = {shape: layers(*shape) for shape in shapes}
    best = {shape: [math.inf, math.inf] for shape in shapes}  # fp32, int8

    def time_round(shape: tuple[int, int], x: torch.Tensor) -> None:
        linear, quantized = pairs[shape]
        best[shape][0] = min(best[shape][0], _timed(lambda: linear(x)))
        best[shape][1] = min(best[shape][1], _timed(lambda: quantized(x)))

    commonest = max(shapes, key=lambda s: (shapes[s], s[0] * s[1]))  # e.g. the attention projections
    with torch.inference_mode():
        probe = inputs(commonest[0], PROBE_ROWS)
        pairs[commonest][0](probe)  # warm-up, untimed: kernel JIT, weight packing, allocator
        pairs[commonest][1](probe)
        for _ in range(3):
            time_round(commonest, probe)
        fp32, int8 = best[commonest]
        if int8 > INT8_CLEARLY_SLOWER * fp32:
            return fp32 / int8
        for shape in shapes:  # warm every other layer, untimed and cheaply (kernels are JIT-compiled per ISA)
            warm = inputs(shape[0], PROBE_ROWS)
            pairs[shape][0](warm)
            pairs[shape][1](warm)
        batches = {shape: inputs(shape[0], rows) for shape in shapes}
        best = {shape: [math.inf, math.inf] for shape in shapes}
        speedup = 0.0
        for done in range(1, max(repeats, 1) + 1):
            for shape in shapes:
                time_round(shape, batches[shape])
            fp32_total = sum(count * best[s][0] for s, count in shapes.items())
            int8_total = sum(count * best[s][1] for s, count in shapes.items())
            speedup = fp32_total / int8_total
            band = DECISIVE ** (2 if done == 1 else 1)  # one round settles only a clear-cut answer
            if done >= 1 and not INT8_MIN_SPEEDUP / band < speedup < INT8_MIN_SPEEDUP * band:
                break
    return speedup


def choose_precision(
    requested: Precision,
    shapes: Mapping[tuple[int, int], int],
    *,
    measure: Callable[[Mapping[tuple[int, int], int]], float] = measure_int8_speedup,
) -> PrecisionChoice:
    """``fp32`` / ``int8`` as asked; ``auto``: int8 only if ``measure`` says it is >= :data:`INT8_MIN_SPEEDUP` x
    on the model's linear ``shapes`` (:func:`linear_shapes`; known before the weights are read, so a model can
    be built at the chosen precision).

    ``requested`` was checked where it came in (:func:`checked_precision` in ``from_pretrained``)."""
    if requested != "auto":
        return PrecisionChoice(precision=requested, requested=requested, int8_speedup=None)
    started = time.perf_counter()
    speedup = measure(shapes)
    calibration_ms = (time.perf_counter() - started) * 1000
    precision: ResolvedPrecision = "int8" if speedup >= INT8_MIN_SPEEDUP else "fp32"
    choice = PrecisionChoice(
        precision=precision, requested=requested, int8_speedup=speedup, calibration_ms=calibration_ms
    )
    log.info(
        "Precision chosen",
        extra={
            "precision": precision,
            "requested_precision": requested,
            "int8_speedup": round(speedup, 3),
            "int8_min_speedup": INT8_MIN_SPEEDUP,
            "calibration_ms": round(calibration_ms, 1),
        },
    )
    return choice


def choose_precision_again(
    current: ResolvedPrecision,
    requested: Precision,
    shapes: Mapping[tuple[int, int], int],
    *,
    measure: Callable[[Mapping[tuple[int, int], int]], float] = measure_int8_speedup,
) -> PrecisionChoice:
    """:func:`choose_precision` for a model already running at ``current`` (a SnapStart restore on another CPU).

    The answer leaves ``current`` only when the measurement is clearly on the other side: within
    :data:`DECISIVE` of the threshold either precision runs within ~20 % of the other, while a switch costs
    0.1-0.3 s (the weights converted) and noise on a shared host flips such calls.
    """
    choice = choose_precision(requested, shapes, measure=measure)
    speedup = choice.int8_speedup
    close_call = speedup is not None and INT8_MIN_SPEEDUP / DECISIVE < speedup < INT8_MIN_SPEEDUP * DECISIVE
    if choice.precision != current and close_call:
        log.info("Precision kept: too close to call", extra={"precision": current, "int8_speedup": speedup})
        choice = replace(choice, precision=current)
    return choice
