"""The classifier with the shared trained model on SST-2 dev: agreement with plain pipeline(), int8 accuracy, edges."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sentiment_analysis.classifier import SentimentClassifier
from sentiment_analysis.int8 import quantize_int8
from sentiment_analysis.labels import EMPTY_TEXT_PREDICTION
from sentiment_analysis.precision import INT8_MIN_SPEEDUP

pytestmark = [pytest.mark.functional, pytest.mark.slow]


@pytest.fixture(scope="module")
def fp32(shared_model_dir: Path) -> SentimentClassifier:
    return SentimentClassifier.from_pretrained(shared_model_dir, precision="fp32", neutral_threshold=0.0, threads=1)


@pytest.fixture(scope="module")
def int8(shared_model_dir: Path) -> SentimentClassifier:
    """int8 numerics with the int8 x int8 products computed exactly in float64 (bit-identical to
    ``torch._int_mm``, see the test below): ``_int_mm`` is a ~1 GOP/s reference loop on CPUs without
    VNNI (this build machine), which made this module take 6 minutes instead of seconds."""
    clf = SentimentClassifier.from_pretrained(shared_model_dir, precision="fp32", neutral_threshold=0.0, threads=1)
    quantize_int8(clf.runtime.model, emulate=True)
    return SentimentClassifier(
        clf.runtime, clf.tokenizer, neutral_threshold=0.0, precision="int8", max_length=clf.max_length
    )


def test_emulated_int8_products_are_bit_identical_to_int_mm() -> None:
    import torch

    # Given one linear layer of the shared model's width, quantised both ways
    torch.manual_seed(0)
    real = quantize_int8(torch.nn.Sequential(torch.nn.Linear(384, 384)))
    emulated = quantize_int8(torch.nn.Sequential(torch.nn.Linear(384, 384)), emulate=True)
    emulated.load_state_dict(real.state_dict())
    x = torch.randn(2, 3, 384) * 3
    # Then both give the same bits
    with torch.inference_mode():
        assert torch.equal(real(x), emulated(x))


def _accuracy(labels: list[str], rows: list[tuple[str, int]]) -> float:
    return sum((label == "POSITIVE") == (gold == 1) for label, (_, gold) in zip(labels, rows, strict=True)) / len(rows)


@pytest.fixture(scope="module")
def reference(shared_model_dir: Path, sst2_dev: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """transformers' own pipeline on SST-2 dev, as the seeds use it (batched only to keep the test fast;
    its attention mask makes padding invisible)."""
    from transformers import pipeline

    clf = pipeline("text-classification", model=str(shared_model_dir), device=-1)  # = "sentiment-analysis"
    return list(clf([text for text, _ in sst2_dev], truncation=True, batch_size=32))


def test_fp32_agrees_with_plain_pipeline_and_int8_stays_within_half_a_point(
    fp32: SentimentClassifier,
    int8: SentimentClassifier,
    reference: list[dict[str, Any]],
    sst2_dev: list[tuple[str, int]],
) -> None:
    texts = [text for text, _ in sst2_dev]
    # Given the reference: transformers' pipeline
    ref_labels = [r["label"] for r in reference]
    # (fp32 runs on the own packed-token DistilBERT forward, not on transformers)
    assert type(fp32.runtime.model).__name__ == "DistilBertClassifier"
    # When the batched classifier runs at both precisions
    fp32_out = fp32.classify(texts)
    int8_out = int8.classify(texts)
    # Then fp32 agrees with the pipeline on ≥ 99.5 % of labels, with the same probabilities, and is as accurate
    agreement = sum(p.label == r for p, r in zip(fp32_out, ref_labels, strict=True)) / len(texts)
    assert agreement >= 0.995
    assert max(abs(p.score - r["score"]) for p, r in zip(fp32_out, reference, strict=True)) < 1e-3
    fp32_accuracy = _accuracy([p.label for p in fp32_out], sst2_dev)
    assert fp32_accuracy >= _accuracy(ref_labels, sst2_dev)
    # And int8 is within 0.5 points of fp32
    assert _accuracy([p.label for p in int8_out], sst2_dev) >= fp32_accuracy - 0.005


def test_order_neutral_threshold_empty_and_hostile_texts(shared_model_dir: Path, fp32: SentimentClassifier) -> None:
    # Given a classifier with the default-style threshold
    clf = SentimentClassifier(
        fp32.runtime, fp32.tokenizer, neutral_threshold=0.75, precision="fp32", max_length=fp32.max_length
    )
    texts = [
        "I love this!",
        "",
        "This is terrible.",
        "   \n\t",
        "it 's a movie .",
        "The best day ever 😍🎉 " * 3,
        "هذا المنتج رائع جدا",
        "bad\x00\x07\u202e control \ufeff chars",
        "I really loved it. " * 20_000,
    ]
    # When classified in one call
    out = clf.classify(texts)
    # Then answers keep input order, empty texts get the documented answer, nothing raises
    assert len(out) == len(texts)
    assert (out[0].sentiment, out[0].label) == ("positive", "POSITIVE")
    assert (out[2].sentiment, out[2].label) == ("negative", "NEGATIVE")
    assert out[1] == EMPTY_TEXT_PREDICTION
    assert out[3] == EMPTY_TEXT_PREDICTION
    assert out[8].sentiment == "positive"  # a 380k-character text is truncated at the model's max length
    for prediction in out:
        assert 0.0 <= prediction.score <= 1.0
        assert prediction.sentiment == "neutral" or prediction.score >= 0.75
    # And the same texts one by one give the same answers as the batch (padding does not leak)
    for text, batched in zip(texts, out, strict=True):
        single = clf.classify([text])[0]
        assert single.label == batched.label
        assert abs(single.score - batched.score) < 1e-4
    assert clf.max_length == 512


def test_int8_answers_do_not_depend_on_batch_neighbours_or_padding(
    int8: SentimentClassifier, sst2_dev: list[tuple[str, int]]
) -> None:
    # Given texts of very different lengths, classified in one padded batch and one at a time
    texts = [text for text, _ in sst2_dev[:48]] + ["a much longer review of this film, " * 30]
    batched = int8.classify(texts)
    # Then each text gets the same answer either way (per-token activation scales)
    for text, together in zip(texts, batched, strict=True):
        alone = int8.classify([text])[0]
        assert alone.label == together.label
        # (not bit-identical: attention over a wider batch differs by ~1e-7 in fp32, which can move an
        # activation across an int8 rounding boundary; per-batch scales moved labels, 2 % of them)
        assert abs(alone.score - together.score) < 5e-3


def test_auto_resolves_by_measurement_and_runs_what_it_chose(
    shared_model_dir: Path, fp32: SentimentClassifier, sst2_dev: list[tuple[str, int]]
) -> None:
    # Given the default precision on this CPU
    auto = SentimentClassifier.from_pretrained(shared_model_dir, neutral_threshold=0.0, threads=1)
    choice = auto.precision_choice
    # Then it was measured on the model's linear layers and resolved to what the measurement says
    assert choice is not None
    assert choice.requested == "auto"
    assert choice.int8_speedup is not None
    assert auto.precision == ("int8" if choice.int8_speedup >= INT8_MIN_SPEEDUP else "fp32")
    int8_layers = [m for m in auto.runtime.model.modules() if type(m).__name__ == "Int8Linear"]
    assert bool(int8_layers) == (auto.precision == "int8")
    # And it answers like fp32 (same labels on a sample of SST-2 dev)
    texts = [text for text, _ in sst2_dev[:64]]
    agree = sum(a.label == f.label for a, f in zip(auto.classify(texts), fp32.classify(texts), strict=True))
    assert agree >= 63


@pytest.mark.parametrize("case", [("int8", 0.30), ("fp16", 0.55)], ids=["int8", "fp16"])
def test_compact_bundles_agree_with_the_reference_and_stay_loadable_by_transformers(
    case: tuple[str, float],
    shared_model_dir: Path,
    reference: list[dict[str, Any]],
    sst2_dev: list[tuple[str, int]],
    tmp_path: Path,
) -> None:
    from sentiment_shared.model_compact import compact_model_dir

    encoding, max_fraction = case
    # Given the shared model compacted twice, as the publisher does
    one = compact_model_dir(shared_model_dir, tmp_path / "one", encoding=encoding)  # type: ignore[arg-type]
    two = compact_model_dir(shared_model_dir, tmp_path / "two", encoding=encoding)  # type: ignore[arg-type]
    # Then it is reproducible, and its weights a fraction of the original's
    digests = [{p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()} for d in (one, two)]
    assert digests[0] == digests[1]
    size = sum(p.stat().st_size for p in one.iterdir())
    assert size <= max_fraction * sum(p.stat().st_size for p in shared_model_dir.iterdir())
    # And both the own runtime and plain transformers (the fallback) agree with the reference on
    # >= 99.5 % of SST-2 dev labels, at the reference's accuracy within half a point
    texts = [text for text, _ in sst2_dev]
    ref_labels = [r["label"] for r in reference]
    for runtime, model_class in (
        ("auto", "DistilBertClassifier"),
        ("transformers", "DistilBertForSequenceClassification"),
    ):
        clf = SentimentClassifier.from_pretrained(
            one,
            precision="fp32",
            neutral_threshold=0.0,
            threads=1,
            runtime=runtime,  # type: ignore[arg-type]
        )
        assert type(clf.runtime.model).__name__ == model_class
        labels = [p.label for p in clf.classify(texts)]
        assert sum(a == b for a, b in zip(labels, ref_labels, strict=True)) / len(texts) >= 0.995
        assert _accuracy(labels, sst2_dev) >= _accuracy(ref_labels, sst2_dev) - 0.005


def test_own_forward_matches_transformers_logits_and_tokens(
    shared_model_dir: Path, sst2_dev: list[tuple[str, int]]
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sentiment_analysis.distilbert import DistilBertClassifier, FastTokenizer

    # Given texts of very different lengths (one past the 512-token limit)
    texts = [text for text, _ in sst2_dev[:40]] + ["a much longer review of this film, " * 200]
    # Then the tokenizers library gives transformers' ids
    ids = FastTokenizer(shared_model_dir)(texts, truncation=True, max_length=512)["input_ids"]
    hf_tokenizer = AutoTokenizer.from_pretrained(shared_model_dir)
    assert ids == hf_tokenizer(texts, truncation=True, max_length=512)["input_ids"]
    # And the packed forward gives transformers' padded logits
    hf = AutoModelForSequenceClassification.from_pretrained(shared_model_dir).eval()
    width = max(map(len, ids))
    input_ids = torch.tensor([x + [0] * (width - len(x)) for x in ids])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    with torch.inference_mode():
        expected = hf(input_ids=input_ids, attention_mask=mask).logits
        got = DistilBertClassifier.from_dir(shared_model_dir).logits(ids)
    assert torch.allclose(got, expected, atol=1e-4)


def _without_tokenizer_json(model: Path) -> None:
    (model / "tokenizer.json").unlink()  # only the WordPiece vocabulary left


def _without_max_positions(model: Path) -> None:
    # a hand-written config.json: transformers takes DistilBertConfig's default (512), the own forward had none
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    del config["max_position_embeddings"]
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_without_tokenizer_json, "no tokenizer.json"),
        (_without_max_positions, "config.json lacks 'max_position_embeddings'"),
    ],
    ids=["no-tokenizer-json", "no-max-position-embeddings"],
)
def test_what_the_own_forward_cannot_run_falls_back_to_transformers(
    shared_model_dir: Path, tmp_path: Path, change: Callable[[Path], None], why: str
) -> None:
    import shutil

    from sentiment_analysis.distilbert import supports

    # Given the shared model, changed so the own forward cannot run it
    model = tmp_path / "changed"
    shutil.copytree(shared_model_dir, model)
    change(model)
    # Then the own runtime says why not, and the classifier loads it with transformers
    assert supports(model) == why
    clf = SentimentClassifier.from_pretrained(model, precision="fp32", threads=1)
    assert type(clf.runtime.model).__name__ == "DistilBertForSequenceClassification"
    assert clf.classify(["I love this!"])[0].label == "POSITIVE"


def test_a_tokenizer_json_built_from_vocab_alone_gives_transformers_ids(
    shared_model_dir: Path, sst2_dev: list[tuple[str, int]], tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from sentiment_analysis.distilbert import FastTokenizer
    from sentiment_shared.model_compact import compact_model_dir

    # Given the model without its tokenizer.json (as the production hub model comes)
    source = tmp_path / "source"
    source.mkdir()
    for path in shared_model_dir.iterdir():
        if path.name not in {"tokenizer.json", "MODEL_CARD.md"}:
            (source / path.name).write_bytes(path.read_bytes())

    # When publishing compacts it (the tokenizers library alone writes the tokenizer.json)
    out = compact_model_dir(source, tmp_path / "compact")

    # Then its ids equal transformers' own tokenizer's on every SST-2 dev text, and past the length limit
    texts = [text for text, _ in sst2_dev] + ["Crème brûlée, naïve café — 東京 ok!? " * 120]
    got = FastTokenizer(out)(texts, truncation=True, max_length=512)["input_ids"]
    assert got == AutoTokenizer.from_pretrained(source)(texts, truncation=True, max_length=512)["input_ids"]


def test_a_restored_copy_switches_to_the_precision_its_cpu_measures(
    shared_model_dir: Path, fp32: SentimentClassifier, sst2_dev: list[tuple[str, int]]
) -> None:
    # Given an auto classifier loaded on one CPU (a SnapStart snapshot's)
    auto = SentimentClassifier.from_pretrained(shared_model_dir, neutral_threshold=0.0, threads=1)
    texts = [text for text, _ in sst2_dev[:64]]
    reference = [p.label for p in fp32.classify(texts)]

    def int8_layers() -> int:
        return sum(type(m).__name__ == "Int8Linear" for m in auto.runtime.model.modules())

    # When it is restored on a CPU where int8 measures 3x fp32, then 0.02x, then 3x, then 1.0x (too close
    # to the 1.2x threshold to pay for a conversion: what runs is kept)
    for speedup, expected in ((3.0, "int8"), (0.02, "fp32"), (3.0, "int8"), (1.0, "int8")):
        choice = auto.remeasure_precision(measure=lambda shapes, s=speedup: s)
        # Then it runs what that CPU's measurement says, every linear layer converted, and answers as fp32 does
        assert (choice.precision, choice.requested, auto.precision, choice.int8_speedup) == (
            expected,
            "auto",
            expected,
            speedup,
        )
        assert int8_layers() == (26 if expected == "int8" else 0)  # 6 blocks x (QKV, out, FFN x 2) + 2 head layers
        agree = sum(p.label == r for p, r in zip(auto.classify(texts), reference, strict=True))
        assert agree >= 63


def _random_distilbert(dest: Path, shared_model_dir: Path) -> Path:
    """A DistilBERT classifier with random weights (a smaller DistilBertConfig) and the shared model's tokenizer."""
    import shutil

    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(dim=192, hidden_dim=768, n_layers=2, n_heads=6)
    config.id2label, config.label2id = {0: "NEGATIVE", 1: "POSITIVE"}, {"NEGATIVE": 0, "POSITIVE": 1}
    DistilBertForSequenceClassification(config).save_pretrained(dest, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(shared_model_dir / name, dest / name)
    return dest


@pytest.mark.parametrize("source", ["shared model", "random DistilBertConfig"])
def test_compact_int8_weights_go_straight_into_int8_layers(
    source: str,
    shared_model_dir: Path,
    sst2_dev: list[tuple[str, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from sentiment_analysis import distilbert
    from sentiment_analysis.int8 import dequantize_int8, int8_linear_class
    from sentiment_analysis.precision import linear_shapes
    from sentiment_shared.model_compact import compact_model_dir, to_hf_state_dict

    # Given a compact (int8 weight-only) bundle, as publish makes it
    model_dir = (
        shared_model_dir if source == "shared model" else _random_distilbert(tmp_path / "random", shared_model_dir)
    )
    compact = compact_model_dir(model_dir, tmp_path / "compact")
    config = distilbert.Config.from_dir(compact)
    # And the way it loaded before: every weight dequantised to fp32, every linear layer quantised again
    before = quantize_int8(distilbert.DistilBertClassifier(config, to_hf_state_dict(compact)))
    # When the classifier loads it at int8, watching what is made fp32 and what is quantised from fp32
    int8_linear: Any = int8_linear_class()
    quantised_from_fp32: list[tuple[int, ...]] = []
    made_fp32: list[tuple[int, ...]] = []
    from_linear, dequantised = int8_linear.from_linear.__func__, distilbert.dequantised

    def watched_from_linear(cls: Any, linear: torch.nn.Linear, **kwargs: Any) -> Any:
        quantised_from_fp32.append(tuple(linear.weight.shape))
        return from_linear(cls, linear, **kwargs)

    def watched_dequantised(rows: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        made_fp32.append(tuple(rows.shape))
        return dequantised(rows, scale)

    monkeypatch.setattr(int8_linear, "from_linear", classmethod(watched_from_linear))
    monkeypatch.setattr(distilbert, "dequantised", watched_dequantised)
    clf = SentimentClassifier.from_pretrained(compact, precision="int8", neutral_threshold=0.0, threads=1)
    monkeypatch.undo()
    model = clf.runtime.model
    # Then no linear weight stored as int8 was made fp32 or quantised again: only the embeddings were dequantised,
    # and only the classifier head (stored fp32: too small to compact) was quantised
    d = config.dim
    assert sorted(made_fp32) == sorted([(config.vocab_size, d), (config.max_position_embeddings, d)])
    assert quantised_from_fp32 == [(len(config.id2label), d)]
    # And the layers are the ones measured before loading, every one int8
    assert linear_shapes(model) == distilbert.linear_shapes(config)
    assert sum(type(m).__name__ == "Int8Linear" for m in model.modules()) == 4 * config.n_layers + 2
    # And every weight, scale and bias is bit-identical to the old way's, and so are the logits
    assert model.state_dict().keys() == before.state_dict().keys()
    for name, tensor in before.state_dict().items():
        assert tensor.dtype == model.state_dict()[name].dtype, name
        assert torch.equal(tensor, model.state_dict()[name]), name
    ids = clf.tokenizer([text for text, _ in sst2_dev[:16]], truncation=True, max_length=512)["input_ids"]
    with torch.inference_mode():
        assert torch.equal(clf.runtime.logits(ids), before.logits(ids))
        # And a restore's switch to fp32 and back (set_precision) gives the old way's layers too
        clf.set_precision("fp32")
        assert torch.equal(clf.runtime.logits(ids), dequantize_int8(before).logits(ids))
        clf.set_precision("int8")
        assert torch.equal(clf.runtime.logits(ids), quantize_int8(before).logits(ids))
