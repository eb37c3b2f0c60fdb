"""Linear layers as int8 GEMMs: ``torch._int_mm`` with per-channel weight scales and per-token activation scales.

``precision="int8"`` runs every linear layer this way: about 2x fp32's throughput on a full-size
DistilBERT where the CPU has fast int8 kernels (VNNI / AVX-512), the same SST-2 dev accuracy as fp32
with the shared model, and answers that do not depend on batch composition. (``torch.ao`` dynamic
quantisation, deprecated, was measured too: its per-batch activation scale lost 0.7-1.8 points and
flipped 2 % of labels with the batch.) Whether int8 is faster on the CPU at hand is
:mod:`sentiment_analysis.precision`'s question.

The weights use the compact bundle's int8 scheme (:mod:`sentiment_shared.model_compact`: symmetric,
one scale per output channel), so a compact bundle's weights convert both ways exactly. torch is imported
on first use, never at this module's import.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sentiment_shared.model_compact import INT8_QMAX, dequantised

if TYPE_CHECKING:
    import torch


def frozen_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.nn.Linear:
    """An inference-only ``nn.Linear`` holding ``weight`` (out x in) and ``bias`` as they are (no copy).

    Built on the meta device: no random initialisation of weights that are replaced at once."""
    import torch

    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    linear.weight = torch.nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        linear.bias = torch.nn.Parameter(bias, requires_grad=False)
    return linear


@functools.cache
def int8_linear_class() -> type[torch.nn.Module]:
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

        def __init__(
            self,
            q_weight: torch.Tensor,
            weight_scale: torch.Tensor,
            bias: torch.Tensor | None,
            *,
            emulate: bool = False,
        ) -> None:
            """``q_weight``: ``(out, in)`` int8, ``weight_scale``: ``(out,)`` fp32 (``w = q * scale``), ``bias`` fp32.

            Made by :meth:`from_linear` (quantise fp32 weights) or :meth:`from_int8_rows` (a compact bundle's)."""
            super().__init__()
            self.emulate = emulate
            self.out_features, self.in_features = q_weight.shape
            self.register_buffer("weight_t", q_weight.t().contiguous())  # (in, out): _int_mm's layout
            self.register_buffer("weight_scale", weight_scale)
            self.register_buffer("bias", bias)

        @classmethod
        def from_linear(cls, linear: torch.nn.Linear, *, emulate: bool = False) -> Int8Linear:
            """``linear``'s weights quantised once per output channel (symmetric, :data:`INT8_QMAX`)."""
            weight = linear.weight.detach().float()
            w_scale = weight.abs().amax(dim=1).clamp(min=1e-12) / INT8_QMAX
            q_weight = torch.round(weight / w_scale[:, None]).clamp(-INT8_QMAX, INT8_QMAX).to(torch.int8)
            bias = None if linear.bias is None else linear.bias.detach().float()
            return cls(q_weight, w_scale, bias, emulate=emulate)

        @classmethod
        def from_int8_rows(
            cls, rows: torch.Tensor, row_scale: torch.Tensor, bias: torch.Tensor | None, *, emulate: bool = False
        ) -> Int8Linear:
            """The layer :meth:`from_linear` makes of the fp32 weight ``rows * row_scale`` (a compact bundle's int8
            rows and scales, :func:`~sentiment_shared.model_compact.dequantised`), without making that weight.

            Rows as :func:`~sentiment_shared.model_compact.compact_model_dir` writes them (largest ``|q|`` 127, or
            all zero) quantise back to themselves: ``rows`` are kept and only the scale is computed, exactly as
            :meth:`from_linear` computes it from the dequantised weight (``max |q * s| = 127 * s`` rounded to
            fp32, the rounding being monotonic), so the layer is bit-identical to the dequantise-then-quantise
            round trip, and to a SnapStart restore's fp32 -> int8 switch. Any other rows take that round trip.
            """
            row_scale = row_scale.float()
            row_max = torch.maximum(rows.amax(dim=1).to(torch.int16), rows.amin(dim=1).to(torch.int16).neg())
            amax = row_max.float() * row_scale
            # the exactness argument needs normal (not tiny, finite) scales; the clamp below must not bite
            exact = (row_max == 0) | ((row_max == INT8_QMAX) & (amax >= 1e-12) & amax.isfinite())
            if rows.dtype != torch.int8 or not bool(exact.all()):
                return cls.from_linear(frozen_linear(dequantised(rows, row_scale), bias), emulate=emulate)
            return cls(rows, amax.clamp(min=1e-12) / INT8_QMAX, bias, emulate=emulate)

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
            weight = self.weight_t.t().float() * self.weight_scale[:, None]
            return frozen_linear(weight.contiguous(), None if self.bias is None else self.bias.clone())

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

    int8_linear = int8_linear_class()

    def swap(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, int8_linear.from_linear(child, emulate=emulate))  # type: ignore[attr-defined]
            else:
                swap(child)

    swap(model)
    return model


def dequantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`quantize_int8` (in place): every ``Int8Linear`` becomes the fp32 ``nn.Linear`` of its
    int8 weights. Exact for a compact bundle's weights (already int8 per channel); for an fp32 bundle the
    result is the compact bundle's weight-only int8 model (the same SST-2 dev accuracy, README)."""
    int8_linear = int8_linear_class()

    def swap(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, int8_linear):
                setattr(module, name, child.to_linear())  # type: ignore[operator]
            else:
                swap(child)

    swap(model)
    return model
