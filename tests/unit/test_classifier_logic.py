"""The classifier's model-free logic: label mapping, length-sorted micro-batches, CPU quota, cheap import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentiment_analysis.batching import plan_micro_batches
from sentiment_analysis.classifier import SentimentClassifier
from sentiment_analysis.cpu import available_cpus
from sentiment_analysis.labels import label_sentiments, sentiment_of_label
from sentiment_analysis.precision import (
    INT8_MIN_SPEEDUP,
    PROBE_ROWS,
    choose_precision,
    choose_precision_again,
    linear_shapes,
    measure_int8_speedup,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("POSITIVE", "positive"),
        ("Negative", "negative"),
        ("neutral", "neutral"),
        ("pos", "positive"),
        ("LABEL_NEG", "negative"),
        ("very positive", "positive"),
        ("LABEL_0", None),
        ("positive-or-negative", None),
        ("posh", None),
    ],
)
def test_label_wording_maps_to_a_sentiment(label: str, expected: str | None) -> None:
    # Given a model label / When it is read / Then only unambiguous wording yields a sentiment
    assert sentiment_of_label(label) == expected


def test_id2label_maps_every_class_in_index_order() -> None:
    # Given a three-class config whose ids are not in label order
    id2label = {0: "negative", 1: "neutral", 2: "positive"}
    # When mapped / Then each index gets its sentiment
    assert label_sentiments(id2label) == ["negative", "neutral", "positive"]


def test_uninformative_labels_need_an_explicit_map() -> None:
    # Given LABEL_0/LABEL_1 (no wording) / When mapped without a label_map / Then it refuses clearly
    with pytest.raises(ValueError, match="label_map"):
        label_sentiments({0: "LABEL_0", 1: "LABEL_1"})
    # And with a label_map it works
    assert label_sentiments({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": "negative", "LABEL_1": "positive"}) == [
        "negative",
        "positive",
    ]


@pytest.mark.parametrize(
    "id2label",
    [{}, {0: "POSITIVE", 2: "NEGATIVE"}, {0: "POSITIVE", 1: "VERY POSITIVE"}],
)
def test_unusable_label_sets_are_refused(id2label: dict[int, str]) -> None:
    with pytest.raises(ValueError, match=r"id2label|positive and a negative"):
        label_sentiments(id2label)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=600), max_size=80),
    budget=st.integers(min_value=16, max_value=5000),
    max_batch=st.integers(min_value=1, max_value=70),
)
def test_batches_cover_every_text_once_under_the_budget(lengths: list[int], budget: int, max_batch: int) -> None:
    # When planned
    batches = plan_micro_batches(lengths, token_budget=budget, max_batch=max_batch)
    # Then every index appears exactly once
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        # And a batch respects the count cap and the padded-token budget (a lone oversized text is allowed)
        assert len(batch) <= max_batch
        assert len(batch) == 1 or len(batch) * longest <= budget
    # And texts are grouped by length: batches go from longest to shortest
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


def test_short_texts_share_one_batch_and_long_ones_split() -> None:
    # Given 32 short texts and 10 texts of 512 tokens
    lengths = [20] * 32 + [512] * 10
    # When planned with a 4096-token budget
    batches = plan_micro_batches(lengths, token_budget=4096, max_batch=64)
    # Then the long ones go at most 8 at a time, and the short ones together, never padded to 512
    assert sorted(len(b) for b in batches) == [2, 8, 32]
    for batch in batches:
        assert len({lengths[i] for i in batch}) == 1


def _cgroup(tmp_path: Path, cpu_max: str | None) -> Path:
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "env", "expected"),
    [
        (None, {0, 1}, {}, 2),
        ("max 100000", {0, 1}, {}, 2),
        ("100000 100000", {0, 1}, {}, 1),
        ("150000 100000", {0, 1, 2, 3}, {}, 1),
        ("400000 100000", {0, 1}, {}, 2),
        (None, {0, 1}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}, 1),
        (None, {0, 1}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}, 1),
        (None, {0, 1, 2, 3, 4, 5}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}, 5),
        ("50000 100000", {0}, {}, 1),
    ],
)
def test_threads_follow_the_real_cpu_quota(
    tmp_path: Path, cpu_max: str | None, affinity: set[int], env: dict[str, str], expected: int
) -> None:
    # Given a cgroup quota, an affinity mask and maybe Lambda's memory size
    root = _cgroup(tmp_path, cpu_max)
    # When the usable CPUs are derived / Then the smallest limit wins, rounded down, at least 1
    assert available_cpus(cgroup_root=root, environ=env, affinity=lambda: affinity) == expected


def test_cgroup_v1_quota_is_read(tmp_path: Path) -> None:
    # Given a cgroup v1 layout with a one-CPU quota
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    # Then one thread
    assert available_cpus(cgroup_root=tmp_path, environ={}, affinity=lambda: {0, 1, 2}) == 1


def test_importing_the_classifier_does_not_import_torch_or_aws() -> None:
    # Given a fresh interpreter / When the classifier module is imported
    code = (
        "import sys, sentiment_analysis.classifier\n"
        "names = ('torch', 'transformers', 'boto3', 'botocore', 'aws_lambda_powertools')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    # Then none of the heavy or AWS modules came along
    assert out.stdout.strip() == ""


def _tiny_model() -> object:
    import torch

    layers = (torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))
    return torch.nn.Sequential(*layers)


def test_linear_shapes_counts_each_layer_shape() -> None:
    # Given a model with two 16->16 layers and one 16->4 / Then the shapes are counted
    assert linear_shapes(_tiny_model()) == {(16, 16): 2, (16, 4): 1}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("speedup", "expected"),
    [(0.02, "fp32"), (1.0, "fp32"), (INT8_MIN_SPEEDUP - 0.01, "fp32"), (INT8_MIN_SPEEDUP, "int8"), (2.3, "int8")],
)
def test_auto_takes_int8_only_where_it_measures_faster(
    speedup: float, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a CPU on which int8's linear layers measure `speedup` x fp32's
    seen: list[dict[tuple[int, int], int]] = []

    def measure(shapes: dict[tuple[int, int], int]) -> float:
        seen.append(dict(shapes))
        return speedup

    # When auto resolves
    with caplog.at_level("INFO", logger="sentiment_analysis.precision"):
        choice = choose_precision("auto", linear_shapes(_tiny_model()), measure=measure)  # type: ignore[arg-type]
    # Then int8 only at or above the threshold, measured on the model's own shapes, and the choice is logged
    assert choice.precision == expected
    assert choice.requested == "auto"
    assert choice.int8_speedup == speedup
    assert seen == [{(16, 16): 2, (16, 4): 1}]
    record = next(r for r in caplog.records if r.getMessage() == "Precision chosen")
    assert record.__dict__["precision"] == expected
    assert record.__dict__["int8_speedup"] == round(speedup, 3)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_an_explicit_precision_is_kept_without_measuring(precision: str) -> None:
    def measure(shapes: object) -> float:
        raise AssertionError("must not measure")

    choice = choose_precision(precision, linear_shapes(_tiny_model()), measure=measure)  # type: ignore[arg-type]
    assert (choice.precision, choice.int8_speedup) == (precision, None)


@pytest.mark.parametrize(
    ("current", "speedup", "expected", "kept"),
    [
        ("int8", 1.0, "int8", True),  # a fresh load would take fp32, but 1.0x is within DECISIVE of 1.2x
        ("fp32", 1.5, "fp32", True),  # likewise the other way
        ("int8", 0.02, "fp32", False),
        ("fp32", 3.0, "int8", False),
        ("fp32", 1.0, "fp32", False),  # the same answer: nothing to keep
    ],
)
def test_a_restore_switches_only_when_the_measurement_is_clearly_on_the_other_side(
    current: str, speedup: float, expected: str, kept: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a model running at `current` and a restored CPU on which int8 measures `speedup` x fp32
    # When auto resolves again
    with caplog.at_level("INFO", logger="sentiment_analysis.precision"):
        shapes = linear_shapes(_tiny_model())  # type: ignore[arg-type]
        choice = choose_precision_again(current, "auto", shapes, measure=lambda shapes: speedup)  # type: ignore[arg-type]
    # Then only a clear answer switches, and keeping what runs is logged
    assert (choice.precision, choice.requested, choice.int8_speedup) == (expected, "auto", speedup)
    logged = [r for r in caplog.records if r.getMessage() == "Precision kept: too close to call"]
    assert len(logged) == int(kept)


def test_an_unknown_precision_is_refused_before_anything_loads(tmp_path: Path) -> None:
    # Given a directory with no model in it / When asked for a precision that does not exist
    # Then the precision is what is refused (loading the empty directory would fail otherwise)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, int8"):
        SentimentClassifier.from_pretrained(tmp_path, precision="fp16")  # type: ignore[arg-type]


def test_the_int8_measurement_runs_the_real_kernels() -> None:
    # Given small linear shapes / When int8 and fp32 are timed on this CPU
    speedup = measure_int8_speedup({(64, 64): 2, (64, 256): 1}, repeats=1)
    # Then a finite positive ratio comes back (its value is this CPU's business)
    assert 0 < speedup < float("inf")


class FakeCpu:
    """A CPU with a fake clock: each linear call advances it by its cost. The first call of a kernel on a
    shape also pays ``cold_s`` of that kernel (oneDNN JIT-compiles ``torch._int_mm``'s kernel on first use:
    ~10 ms, where a warm call takes 0.1 ms). Records every call as ``(kind, in, out, rows)``."""

    def __init__(self, *, ns_per_mac: dict[str, float], cold_s: dict[str, float]) -> None:
        self.now = 0.0
        self.ns_per_mac = ns_per_mac
        self.cold_s = cold_s
        self.calls: list[tuple[str, int, int, int]] = []
        self._warm: set[tuple[str, int, int]] = set()
        cpu = self

        class Linear:
            kind = "fp32"

            def __init__(self, in_features: int, out_features: int, **_: object) -> None:
                self.in_features, self.out_features = in_features, out_features

            def __call__(self, x: object) -> None:
                cpu.run(self.kind, self.in_features, self.out_features, int(x.shape[0]))  # type: ignore[attr-defined]

        class Int8Linear(Linear):
            kind = "int8"

            @classmethod
            def from_linear(cls, linear: Linear, **_: object) -> Int8Linear:
                return cls(linear.in_features, linear.out_features)

        self.linear, self.int8_linear = Linear, Int8Linear

    def perf_counter(self) -> float:
        return self.now

    def run(self, kind: str, in_f: int, out_f: int, rows: int) -> None:
        if (kind, in_f, out_f) not in self._warm:
            self._warm.add((kind, in_f, out_f))
            self.now += self.cold_s[kind]
        self.now += rows * in_f * out_f * self.ns_per_mac[kind] * 1e-9
        self.calls.append((kind, in_f, out_f, rows))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import types

        import torch

        from sentiment_analysis import precision

        monkeypatch.setattr(precision, "time", types.SimpleNamespace(perf_counter=self.perf_counter))
        monkeypatch.setattr(torch.nn, "Linear", self.linear)
        monkeypatch.setattr(precision, "int8_linear_class", lambda: self.int8_linear)


DISTILBERT_SHAPES = {(768, 2304): 6, (768, 768): 7, (768, 3072): 6, (3072, 768): 6, (768, 2): 1}


def test_auto_measures_warm_kernels_on_a_cpu_with_fast_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a CPU where warm int8 runs at twice fp32's speed but the first int8 call JIT-compiles (10 ms)
    cpu = FakeCpu(ns_per_mac={"fp32": 0.04, "int8": 0.02}, cold_s={"fp32": 0.001, "int8": 0.010})
    cpu.install(monkeypatch)
    # When auto measures int8 against fp32 on DistilBERT's linear shapes
    speedup = measure_int8_speedup(DISTILBERT_SHAPES)
    # Then it sees the warm 2x (a cold probe measured ~0.01x and chose fp32)
    assert speedup == pytest.approx(2.0, rel=0.05)
    assert speedup >= INT8_MIN_SPEEDUP
    # And every shape was timed with a real batch's tokens (10 SST-2 dev texts are ~250)
    timed_rows = {(i, o): r for _, i, o, r in cpu.calls}
    assert set(timed_rows) == set(DISTILBERT_SHAPES)
    assert min(timed_rows.values()) >= 250


def test_auto_exits_early_where_warm_int8_is_clearly_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a CPU without VNNI: warm int8 is a reference loop 50x slower than fp32
    cpu = FakeCpu(ns_per_mac={"fp32": 0.04, "int8": 2.0}, cold_s={"fp32": 0.001, "int8": 0.001})
    cpu.install(monkeypatch)
    # When auto measures
    speedup = measure_int8_speedup(DISTILBERT_SHAPES)
    # Then fp32 wins by the warm ratio, and only the small probe ran int8 (no full-size int8 timing)
    assert speedup == pytest.approx(0.02, rel=0.05)
    assert {(i, o, r) for kind, i, o, r in cpu.calls if kind == "int8"} == {(768, 768, PROBE_ROWS)}


@pytest.mark.parametrize(
    ("row_max", "first_scale"),
    [
        ([127, 127, 127, 127], None),  # as compact_model_dir writes rows: kept as they are
        ([127, 0, 127, 127], None),  # an all-zero row (stored with scale 1.0)
        ([127, 100, 127, 127], None),  # not what quantising would give: the round trip
        ([127, 127, 127, 128], None),  # -128 in a row (outside the symmetric range): the round trip
        ([127, 127, 127, 127], 1e-20),  # a scale so tiny the long way's clamp zeroes the row: the round trip
    ],
    ids=["compact", "zero-row", "short-row", "minus-128", "tiny-scale"],
)
def test_int8_rows_make_the_layer_their_fp32_round_trip_makes(row_max: list[int], first_scale: float | None) -> None:
    import torch

    from sentiment_analysis.int8 import int8_linear_class
    from sentiment_shared.model_compact import dequantised

    int8_linear: Any = int8_linear_class()
    # Given int8 rows with per-row scales (a compact bundle's linear weight), the first rows' largest |q| as given
    # (512 rows: for ~1 % of random scales, quantising rows * scale again gives a scale 1 ulp away)
    generator = torch.Generator().manual_seed(1)
    rows = torch.randint(-127, 128, (512, 64), dtype=torch.int8, generator=generator)
    for i, peak in enumerate(row_max):
        rows[i] = (rows[i].float() * (min(peak, 127) / 127)).round().to(torch.int8)
        rows[i, i] = -peak if peak == 128 else peak
    rows[len(row_max) :, 0] = 127
    scale = torch.rand(512, generator=generator) / 50 + 1e-4
    if 0 in row_max:
        scale[row_max.index(0)] = 1.0  # what compact_model_dir stores for an all-zero row
    if first_scale is not None:
        scale[0] = first_scale
    bias = torch.randn(512, generator=generator)
    # When they become an int8 layer directly, and the long way (dequantised to fp32, then quantised)
    direct = int8_linear.from_int8_rows(rows, scale, bias)
    linear = torch.nn.Linear(64, 512)
    linear.weight = torch.nn.Parameter(dequantised(rows, scale), requires_grad=False)
    linear.bias = torch.nn.Parameter(bias, requires_grad=False)
    long_way = int8_linear.from_linear(linear)
    # Then every buffer is bit-identical, and so are the answers
    assert direct.state_dict().keys() == long_way.state_dict().keys()
    for name, tensor in long_way.state_dict().items():
        assert tensor.dtype == direct.state_dict()[name].dtype
        assert torch.equal(tensor, direct.state_dict()[name]), name
    x = torch.randn(5, 64, generator=generator)
    assert torch.equal(direct(x), long_way(x))
