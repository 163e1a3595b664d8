"""Inference speed against sparsity: what pruning buys at batch 1 and batch 256 on this CPU.

At each sparsity the dense net and its three pruned forms (`bench.sparse`) run in turn
(A, B, C, D, D, C, B, A, ...), the same number of forward passes each, under
`torch.inference_mode`; a form's speedup is the median over rounds of dense time / its time.
docs/science.md's claim 5 predicts: zeros kept dense give nothing, sparse kernels help only at high
sparsity if at all, a physically smaller net is faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.sparse import csr_copy, masked_copy, structured_copy
from bench.timing import interleaved, median, paired_ratio, timed
from study.models import PrunableNet, build_model

METHODS = ("unstructured", "csr", "structured")
LABELS = {
    "unstructured": "unstructured, zeros kept dense",
    "csr": "unstructured, CSR kernels",
    "structured": "structured, shrunk",
}
ROUND_SECONDS = 0.02  # forward passes per round: enough for the dense net to take this long


@dataclass(frozen=True)
class InferenceCase:
    name: str
    model: str
    input_shape: tuple[int, ...]
    width: float = 1.0


def inference_cases() -> list[InferenceCase]:
    """LeNet-300-100 (784 inputs) and a VGG-style conv net: VGG-11 at width 0.25 on 32x32."""
    return [InferenceCase("lenet-300-100", "mlp", (1, 28, 28)),
            InferenceCase("vgg11-w0.25", "vgg11", (3, 32, 32), width=0.25)]


def pruned_forms(model: PrunableNet, sparsity: float) -> tuple[dict[str, torch.nn.Module], float]:
    """{"dense", "unstructured", "csr", "structured": module} and the structured sparsity."""
    zeros = masked_copy(model, sparsity)
    small, reached = structured_copy(model, sparsity)
    return {"dense": model, "unstructured": zeros, "csr": csr_copy(zeros),
            "structured": small}, reached


def _calls(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Forward passes per round, so that one round of the dense net lasts ROUND_SECONDS."""
    module(x)  # first call: allocations, kernel selection
    wall, _ = timed(lambda: module(x))
    return max(1, math.ceil(ROUND_SECONDS / max(wall, 1e-6)))


def time_forms(forms: dict[str, torch.nn.Module], x: torch.Tensor, reps: int) -> dict:
    """Interleaved timings of every form on input `x`; calls per round set by the dense net."""
    with torch.inference_mode():
        calls = _calls(forms["dense"], x)
        if calls > 1:  # short calls: warm every form first (a long call's first-time share is nil)
            for module in forms.values():
                module(x)

        def make(name: str):
            module = forms[name]
            return lambda: [module(x) for _ in range(calls)]

        return {"calls": calls, "times": interleaved(list(forms), reps, make)}


def bench_inference(case: InferenceCase, sparsities: list[float], batches: list[int],
                    reps: int, seed: int = 0) -> list[dict]:
    """One row per (batch, sparsity, method): seconds per forward pass and speedup vs dense."""
    model = build_model(case.model, case.input_shape, 10, width=case.width, seed=seed).eval()
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for sparsity in sparsities:
        forms, reached = pruned_forms(model, sparsity)
        for batch in batches:
            x = torch.randn(batch, *case.input_shape, generator=gen)
            timing = time_forms(forms, x, reps)
            t, calls = timing["times"], timing["calls"]
            for method in METHODS:
                rows.append({
                    "model": case.name, "batch": batch, "sparsity": sparsity,
                    "method": method, "label": LABELS[method],
                    "structured_sparsity": reached if method == "structured" else sparsity,
                    "ms_per_forward": 1e3 * median(t[method]["wall"]) / calls,
                    "dense_ms_per_forward": 1e3 * median(t["dense"]["wall"]) / calls,
                    "speedup": paired_ratio(t["dense"]["cpu"], t[method]["cpu"]),
                    "speedup_wall": paired_ratio(t["dense"]["wall"], t[method]["wall"]),
                    "calls": calls, "reps": reps,
                })
    return rows


def run_inference(cases: list[InferenceCase], sparsities: list[float], batches: list[int],
                  reps: int, echo=print) -> list[dict]:
    rows = []
    for case in cases:
        rows += (new := bench_inference(case, sparsities, batches, reps))
        for batch in batches:
            cells = "  ".join(f"{r['sparsity']:.0%} {r['method']} {r['speedup']:.2f}x"
                              for r in new if r["batch"] == batch)
            echo(f"  inference {case.name} batch {batch}: {cells}")
    return rows
