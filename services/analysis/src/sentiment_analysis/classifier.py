"""Batched sentiment classification with a Hugging Face sequence-classification model on CPU.

This is the analysis service's core: no AWS, Lambda or Powertools imports. ``torch`` and
``transformers`` are imported lazily inside :meth:`SentimentClassifier.from_pretrained`, so importing
this module is cheap and a cold start pays for them once, where it is measured.

Why it is faster than one ``pipeline()`` call per text (numbers in the README's Performance section):

* texts are tokenised once, **sorted by length** and cut into micro-batches under a token budget, so
  dynamic padding pads each batch only to its own longest text (random order wastes 70-80 % of the
  tokens on padding);
* inference runs under ``torch.inference_mode`` with the thread count sized from the CPU quota the
  process really has (cgroup ``cpu.max``, affinity, Lambda's memory size), never ``os.cpu_count()``:
  on a 2,048 MB function two threads on ~1.16 vCPU of quota are several times slower than one;
* ``precision="auto"`` (the default) measures, at load, the model's own linear shapes as int8 and as
  fp32 GEMMs on the CPU it runs on, warm (the first ``torch._int_mm`` call JIT-compiles its kernel) and
  at a real batch's token count, and takes int8 only where it is measured faster (log line
  "Precision chosen" with the ratio). ``torch._int_mm`` is fast only with VNNI / AVX-512 kernels; on
  CPUs without them it ranges from fp32's speed to a reference loop 40-60x slower, so a fixed int8
  default could turn a batch into a timeout. A SnapStart restore measures again
  (:meth:`SentimentClassifier.remeasure_precision`) and converts the layers if the answer changed.
* ``precision="int8"`` runs every linear layer as an int8 GEMM (``torch._int_mm``) with per-channel
  weight scales and per-token activation scales: about 2x fp32's throughput on a full-size
  DistilBERT where the CPU has fast int8 kernels, the same SST-2 dev accuracy as fp32 with the shared
  model, and answers that do not depend on batch composition. (``torch.ao`` dynamic quantisation,
  deprecated, was measured too: its per-batch activation scale lost 0.7-1.8 points and flipped 2 % of
  labels with the batch.)

Labels come from the model's ``config.id2label``; each is mapped to ``positive`` / ``negative`` /
``neutral`` by its wording (``POSITIVE``, ``pos``, ``Negative`` ...), so no per-model strings are
hard-coded. A model whose labels say nothing (``LABEL_0``) needs an explicit ``label_map``.

Empty or whitespace-only text is not sent to the model: it gets ``Prediction(sentiment="neutral",
score=0.0, label="")`` (:data:`EMPTY_TEXT_PREDICTION`), i.e. "nothing to classify", never an exception.
A text is called ``neutral`` when the top label's probability is below ``neutral_threshold``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sentiment_shared.schemas import Sentiment
from sentiment_shared.stack import DEFAULT_NEUTRAL_THRESHOLD

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "int8"]
"""What a caller asks for; ``auto`` resolves to one of the two others at load."""
ResolvedPrecision = Literal["fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "int8")

DEFAULT_PRECISION: Precision = "auto"
"""int8 only where it is measured faster than fp32 on this CPU at load, else fp32 (README "Performance":
int8 is ~2x fp32 with VNNI kernels and 40-60x slower without them; same SST-2 dev accuracy)."""

INT8_MIN_SPEEDUP = 1.2
"""``auto`` takes int8 when its linear layers measure at least this much faster than fp32's: the GEMMs are
most but not all of a forward pass, and a marginal win is within timing noise."""

log = logging.getLogger(__name__)

DEFAULT_TOKEN_BUDGET = 4096
"""Padded tokens per micro-batch: bounds the attention activations (batch x heads x len^2), so 32 texts
of 512 tokens run 8 at a time (peak RSS ~926 MB at int8, README "Performance"), while a batch of short
texts (SST-2: 25 tokens) goes through in one forward pass."""

DEFAULT_MAX_BATCH = 64

LAMBDA_MB_PER_VCPU = 1769
"""AWS: a function gets one vCPU of quota per 1,769 MB of memory."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """One text's answer; ``score`` is the probability of the model's top label ``label``."""

    sentiment: Sentiment
    score: float
    label: str


EMPTY_TEXT_PREDICTION = Prediction(sentiment="neutral", score=0.0, label="")
"""The documented answer for empty or whitespace-only text: nothing to classify."""

_WORD = re.compile(r"[a-z]+")
_LABEL_WORDS: dict[str, Sentiment] = {
    "positive": "positive",
    "pos": "positive",
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}


def sentiment_of_label(label: str) -> Sentiment | None:
    """``positive`` / ``negative`` / ``neutral`` from a label's wording, or None when it says nothing."""
    found = {_LABEL_WORDS[w] for w in _WORD.findall(label.lower()) if w in _LABEL_WORDS}
    return found.pop() if len(found) == 1 else None


def label_sentiments(id2label: Mapping[int, str], label_map: Mapping[str, Sentiment] | None = None) -> list[Sentiment]:
    """The sentiment of each class index, from ``label_map`` or else from each label's wording."""
    if not id2label:
        raise ValueError("the model config has no id2label")
    n = len(id2label)
    if sorted(id2label) != list(range(n)):
        raise ValueError(f"id2label keys must be 0..{n - 1}, got {sorted(id2label)}")
    sentiments: list[Sentiment] = []
    for index in range(n):
        label = id2label[index]
        sentiment = label_map[label] if label_map and label in label_map else sentiment_of_label(label)
        if sentiment is None:
            raise ValueError(
                f"cannot tell the sentiment of label {label!r} (id2label={dict(id2label)}); pass label_map"
            )
        sentiments.append(sentiment)
    if "positive" not in sentiments or "negative" not in sentiments:
        raise ValueError(f"the model needs a positive and a negative label, got {dict(id2label)}")
    return sentiments


# --------------------------------------------------------------------------- CPU quota


def _cgroup_cpu_quota(root: Path) -> float | None:
    """vCPUs allowed by the cgroup (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def available_cpus(
    *,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    environ: Mapping[str, str] | None = None,
    affinity: Callable[[], set[int]] | None = None,
) -> int:
    """Whole CPUs this process may really use: min of affinity, cgroup quota and Lambda's memory share.

    Lambda shows 2 vCPUs up to 3,008 MB while the quota is memory / 1,769 MB, so the memory size
    (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``) is part of the answer; a fractional quota rounds down
    (at least 1) because an oversubscribed thread stalls the whole GEMM.
    """
    env = os.environ if environ is None else environ
    get_affinity = affinity or (lambda: os.sched_getaffinity(0))
    try:
        limits: list[float] = [len(get_affinity())]
    except (AttributeError, OSError):  # not Linux
        limits = [float(os.cpu_count() or 1)]
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        limits.append(quota)
    memory_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory_mb.isdigit():
        limits.append(int(memory_mb) / LAMBDA_MB_PER_VCPU)
    return max(1, math.floor(min(limits)))


# --------------------------------------------------------------------------- batching


BATCH_OVERHEAD_TOKENS = 32
"""What one more forward pass costs, in padded tokens' worth of compute (Python + dispatch + small GEMMs)."""

PACKED_BATCH_OVERHEAD_TOKENS = 1024
"""The same for the packed-token forward (:mod:`sentiment_analysis.distilbert`): its linear layers never
see padding (only attention does, ~5 % of the FLOPs), while a GEMM over 200 tokens runs ~15 % slower per
token than one over 800 on this CPU, so it should split a batch only when the budget forces it."""


def plan_batches(
    lengths: Sequence[int], *, token_budget: int, max_batch: int, overhead_tokens: int = BATCH_OVERHEAD_TOKENS
) -> list[list[int]]:
    """Indices grouped into micro-batches of similar length, each ``len(batch) * longest <= token_budget``.

    Texts are sorted longest first and the sorted run is cut where it minimises the padded tokens
    plus ``overhead_tokens`` per batch (an exact dynamic programme, O(n x max_batch)), so a batch pads
    only to its own longest text and short texts never ride along in a long text's batch. A single
    text longer than the budget still gets a batch of its own.
    """
    if token_budget < 1 or max_batch < 1:
        raise ValueError("token_budget and max_batch must be positive")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    sorted_lengths = [lengths[i] for i in order]
    n = len(order)
    best = [0.0] + [math.inf] * n  # best[i]: cheapest way to batch the i longest texts
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end - 1, max(end - max_batch, 0) - 1, -1):
            size = end - start
            padded = size * sorted_lengths[start]  # the batch pads to its first (longest) text
            if size > 1 and padded > token_budget:
                break  # earlier starts only make the batch larger and longer
            cost = best[start] + padded + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches: list[list[int]] = []
    end = n
    while end > 0:
        batches.append(order[cut[end] : end])
        end = cut[end]
    batches.reverse()
    return batches


def import_runtime() -> None:
    """Import torch and what :meth:`SentimentClassifier.from_pretrained` uses for a DistilBERT bundle.

    The cold start calls this on a thread while the model bundle downloads, so the ~2 s of imports
    overlap the network wait instead of following it. transformers is not among them: it is imported
    only for a bundle the own forward cannot run (then from_pretrained pays for it).
    """
    import safetensors.torch  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401

    import sentiment_analysis.distilbert  # noqa: F401


# --------------------------------------------------------------------------- classifier


INT8_QMAX = 127
"""Symmetric int8 range for weights (per output channel) and activations (per token)."""


@functools.cache
def _int8_linear_class() -> type[torch.nn.Module]:
    """The one ``Int8Linear`` class (made on first use, so importing this module does not import torch)."""
    import torch

    class Int8Linear(torch.nn.Module):
        """``nn.Linear`` as an int8 x int8 -> int32 GEMM (``torch._int_mm``, oneDNN on x86 CPUs).

        Weights are quantised once per output channel; activations per token at call time. A scale per
        token (not per tensor, as ``torch.ao`` dynamic quantisation does) makes every text's answer
        independent of its batch neighbours and of its padding, and keeps fp32's SST-2 accuracy.
        """

        weight_t: torch.Tensor
        weight_scale: torch.Tensor
        bias: torch.Tensor | None

        def __init__(self, linear: torch.nn.Linear, *, emulate: bool = False) -> None:
            super().__init__()
            self.emulate = emulate
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            weight = linear.weight.detach().float()
            w_scale = weight.abs().amax(dim=1).clamp(min=1e-12) / INT8_QMAX
            q_weight = torch.round(weight / w_scale[:, None]).clamp(-INT8_QMAX, INT8_QMAX).to(torch.int8)
            self.register_buffer("weight_t", q_weight.t().contiguous())  # (in, out): _int_mm's layout
            self.register_buffer("weight_scale", w_scale)
            self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.reshape(-1, self.in_features).float()
            scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / INT8_QMAX
            q_rows = torch.round(rows / scale).to(torch.int8)  # |rows / scale| <= 127 by construction
            if self.emulate:  # exact: |sums| < 2**53, so the same int32 values, rounded to fp32 the same way
                acc = (q_rows.double() @ self.weight_t.double()).float()
            else:
                acc = torch._int_mm(q_rows, self.weight_t).float()
            out = acc * (scale * self.weight_scale)
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*x.shape[:-1], self.out_features)

        def to_linear(self) -> torch.nn.Linear:
            """The fp32 ``nn.Linear`` these int8 weights stand for (``w = q * scale``). For a compact bundle
            (weights already int8 per output channel, the same scheme) this is the loaded weight again."""
            # device="meta": no random initialisation of weights that are replaced at once
            linear = torch.nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
            weight = self.weight_t.t().float() * self.weight_scale[:, None]
            linear.weight = torch.nn.Parameter(weight.contiguous(), requires_grad=False)
            if self.bias is not None:
                linear.bias = torch.nn.Parameter(self.bias.clone(), requires_grad=False)
            return linear

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-token/per-channel"

    return Int8Linear


def quantize_int8(model: torch.nn.Module, *, emulate: bool = False) -> torch.nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (in place) with its int8 counterpart; returns ``model``.

    ``emulate``: compute each int8 x int8 product exactly in float64 instead of ``torch._int_mm``:
    bit-identical answers, at fp64 GEMM speed, for checking int8's accuracy on a CPU whose int8 kernel
    is a slow reference loop (the test suite). Never faster than fp32, so never a production choice.
    """
    import torch

    int8_linear = _int8_linear_class()

    def swap(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, int8_linear(child, emulate=emulate))
            else:
                swap(child)

    swap(model)
    return model


def dequantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`quantize_int8` (in place): every ``Int8Linear`` becomes the fp32 ``nn.Linear`` of its
    int8 weights. Exact for a compact bundle's weights (already int8 per channel); for an fp32 bundle the
    result is the compact bundle's weight-only int8 model (the same SST-2 dev accuracy, README)."""
    int8_linear = _int8_linear_class()

    def swap(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, int8_linear):
                setattr(module, name, child.to_linear())  # type: ignore[operator]
            else:
                swap(child)

    swap(model)
    return model


# --------------------------------------------------------------------------- precision "auto"


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

    linear_types = (torch.nn.Linear, _int8_linear_class())
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
    int8_linear = _int8_linear_class()
    generator = torch.Generator().manual_seed(0)
    size = max(*(in_f * out_f for in_f, out_f in shapes), max(in_f for in_f, _ in shapes) * rows)
    noise = torch.empty(size).uniform_(-0.1, 0.1, generator=generator)  # values never change a GEMM's time

    def layers(in_f: int, out_f: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        linear = torch.nn.Linear(in_f, out_f, device="meta")  # no initialisation: weights are views of noise
        linear.weight = torch.nn.Parameter(noise[: in_f * out_f].view(out_f, in_f), requires_grad=False)
        linear.bias = torch.nn.Parameter(noise[:out_f].clone(), requires_grad=False)
        return linear, int8_linear(linear)

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
    model: torch.nn.Module,
    *,
    measure: Callable[[Mapping[tuple[int, int], int]], float] = measure_int8_speedup,
) -> PrecisionChoice:
    """``fp32`` / ``int8`` as asked; ``auto``: int8 only if ``measure`` says it is >= :data:`INT8_MIN_SPEEDUP` x."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested != "auto":
        return PrecisionChoice(precision=requested, requested=requested, int8_speedup=None)
    started = time.perf_counter()
    speedup = measure(linear_shapes(model))
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


def _load_with_transformers(path: Path) -> tuple[Any, Any]:
    """transformers' model and tokenizer for ``path``; compact (int8 weight-only) bundles are dequantised."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from sentiment_shared.model_compact import COMPACT_WEIGHTS_FILE, to_hf_state_dict

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a progress bar per cold start is noise in CloudWatch
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if (path / COMPACT_WEIGHTS_FILE).is_file():
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
        model.load_state_dict(to_hf_state_dict(path), strict=False)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    model.eval()
    return model, tokenizer


class SentimentClassifier:
    """A loaded model + tokenizer that classifies many texts in few, tightly padded forward passes."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        neutral_threshold: float = DEFAULT_NEUTRAL_THRESHOLD,
        precision: ResolvedPrecision = "fp32",
        max_length: int,
        label_map: Mapping[str, Sentiment] | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if not 0.0 <= neutral_threshold <= 1.0:
            raise ValueError(f"neutral_threshold must be within 0..1, got {neutral_threshold}")
        self.model = model
        self.tokenizer = tokenizer
        self.neutral_threshold = neutral_threshold
        self.precision: ResolvedPrecision = precision
        """What the model's linear layers run as (``auto`` already resolved)."""
        self.precision_choice: PrecisionChoice | None = None
        self.threads: int | None = None
        """Intra-op threads asked for at load (None: sized from the CPUs available)."""
        self.max_length = max_length
        self.token_budget = token_budget
        self.max_batch = max_batch
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.sentiments = label_sentiments(id2label, label_map)
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike[str],
        *,
        neutral_threshold: float = DEFAULT_NEUTRAL_THRESHOLD,
        precision: Precision = DEFAULT_PRECISION,
        threads: int | None = None,
        label_map: Mapping[str, Sentiment] | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MAX_BATCH,
        runtime: Literal["auto", "transformers"] = "auto",
    ) -> SentimentClassifier:
        """Load a local Hugging Face model directory (config, tokenizer, safetensors) for CPU inference.

        ``runtime``: ``auto`` runs a DistilBERT classifier with ``tokenizer.json`` on this package's own
        packed-token forward (:mod:`sentiment_analysis.distilbert`, no transformers import) and anything
        else with transformers; ``transformers`` forces the latter (the reference, and the fallback).
        ``threads``: intra-op threads; None derives them from :func:`available_cpus`.
        ``precision``: ``fp32``, ``int8``, or ``auto`` (int8 only where measured faster here, see
        :func:`choose_precision`); the result is in ``.precision`` and ``.precision_choice``.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if runtime not in ("auto", "transformers"):
            raise ValueError(f"runtime must be 'auto' or 'transformers', got {runtime!r}")
        import torch

        torch.set_num_threads(threads or available_cpus())
        path = Path(model_dir)
        from sentiment_analysis import distilbert

        reason = distilbert.supports(path) if runtime == "auto" else "runtime='transformers' asked for"
        model: Any
        tokenizer: Any
        if reason is None:
            model, tokenizer = distilbert.DistilBertClassifier.from_dir(path), distilbert.FastTokenizer(path)
        else:
            log.info("Loading the model with transformers", extra={"model_dir": str(path), "reason": reason})
            model, tokenizer = _load_with_transformers(path)
        choice = choose_precision(precision, model)
        if choice.precision == "int8":
            quantize_int8(model)
        # Truncate at what both the position embeddings and the tokenizer allow (tokenizers without a
        # limit report a huge sentinel).
        limits = [int(getattr(model.config, "max_position_embeddings", 0) or 0), int(tokenizer.model_max_length)]
        max_length = min((x for x in limits if 0 < x < 1_000_000), default=512)
        classifier = cls(
            model,
            tokenizer,
            neutral_threshold=neutral_threshold,
            precision=choice.precision,
            max_length=max_length,
            label_map=label_map,
            token_budget=token_budget,
            max_batch=max_batch,
        )
        classifier.precision_choice = choice
        classifier.threads = threads
        return classifier

    def remeasure_precision(
        self, *, measure: Callable[[Mapping[tuple[int, int], int]], float] = measure_int8_speedup
    ) -> PrecisionChoice:
        """Resolve the requested precision again on the CPU this process runs on NOW, and switch to it.

        For a SnapStart restore: the snapshot's ``auto`` choice was measured on the host that ran INIT, and
        the restored copy may run on a CPU with (or without) fast int8. Also re-sizes the thread pool to the
        CPUs available now. ``fp32`` / ``int8`` asked for explicitly stay as they are (no measurement).
        Switching is a weight conversion (int8 <-> fp32 per output channel; 0.05-0.3 s), not a reload, and
        happens only when the measurement is clearly on the other side (:data:`DECISIVE`).
        """
        import torch

        torch.set_num_threads(self.threads or available_cpus())
        requested = self.precision_choice.requested if self.precision_choice else self.precision
        choice = choose_precision(requested, self.model, measure=measure)
        speedup = choice.int8_speedup
        close_call = speedup is not None and INT8_MIN_SPEEDUP / DECISIVE < speedup < INT8_MIN_SPEEDUP * DECISIVE
        if choice.precision != self.precision and close_call:
            # Within DECISIVE of the threshold either precision runs within ~20 % of the other, while a switch
            # costs 0.1-0.3 s (the weights converted) and noise on a shared host flips such calls.
            log.info("Precision kept: too close to call", extra={"precision": self.precision, "int8_speedup": speedup})
            choice = replace(choice, precision=self.precision)
        self.set_precision(choice.precision)
        self.precision_choice = choice
        return choice

    def set_precision(self, precision: ResolvedPrecision) -> None:
        """Run the linear layers as ``precision`` from now on (quantise or dequantise them in place)."""
        if precision == self.precision:
            return
        if precision == "int8":
            quantize_int8(self.model)
        else:
            dequantize_int8(self.model)
        self.precision = precision

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order; all texts go through as few forward passes as fit."""
        import torch

        results = [EMPTY_TEXT_PREDICTION] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if todo:
            encoded: list[list[int]] = self.tokenizer(
                [texts[i] for i in todo], truncation=True, max_length=self.max_length, padding=False
            )["input_ids"]
            lengths = [len(ids) for ids in encoded]
            with torch.inference_mode():
                packed = hasattr(self.model, "logits")
                overhead = PACKED_BATCH_OVERHEAD_TOKENS if packed else BATCH_OVERHEAD_TOKENS
                plan = plan_batches(
                    lengths, token_budget=self.token_budget, max_batch=self.max_batch, overhead_tokens=overhead
                )
                for batch in plan:
                    probs = self._forward([encoded[j] for j in batch])
                    top_p, top_i = probs.max(dim=-1)
                    for j, p, k in zip(batch, top_p.tolist(), top_i.tolist(), strict=True):
                        results[todo[j]] = self._prediction(float(p), int(k))
        return results

    def _forward(self, batch: list[list[int]]) -> torch.Tensor:
        import torch

        if hasattr(self.model, "logits"):  # our packed-token forward: no padding to build
            return torch.softmax(self.model.logits(batch).float(), dim=-1)

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)

    def _prediction(self, probability: float, index: int) -> Prediction:
        probability = min(max(probability, 0.0), 1.0)
        sentiment = self.sentiments[index] if probability >= self.neutral_threshold else "neutral"
        return Prediction(sentiment=sentiment, score=probability, label=self.labels[index])
