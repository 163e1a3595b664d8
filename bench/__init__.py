"""`study bench`: the study's own speed, measured against bare PyTorch, and what pruning buys.

A tool beside the library, not a part of it: it drives the library (`study run`'s and `study
sweep`'s paths, the loop, the packs) and reads a finished sweep through the analysis, so it sits
above both, as `analysis` sits above `study`; `study bench` (`study/cli.py`) is a thin front
over `run_bench` (docs/design.md, "Imports go one way").

Seven parts (`PARTS`), every number a ratio of things timed side by side in the same run, the
training loops all timed by one helper (`timing.race`):

- `trainer`: `study.train.train` against a minimal hand-written loop (samples/s), with and
  without 80% masks;
- `options`: bf16 autocast, channels-last and torch.compile, each against the default loop
  (do they pay on this machine?);
- `orchestration`: one trial through `study run`'s path against `study sweep`'s (Ray Tune +
  MLflow), fixed start-up costs apart, and 2 trials side by side against one after the other;
- `inference`: dense, zeros kept dense, CSR kernels and physically shrunk nets, per sparsity;
- `efficiency`: steps a sweep trains against a naive per-arm pipeline, and a finished sweep's
  wall time against its critical path (read from the store by `analysis.efficiency`);
- `packed`: packs of K stacked nets against the one-at-a-time bare loop (samples/s, and the
  share of the measured matmul limit), and each net's default pack size beside them;
- `records`: trial runs per second a local SQLite store and a loopback tracking server take
  from 2 and 8 concurrent writers.
"""

from bench.suite import PARTS, BenchConfig, run_bench

__all__ = ["PARTS", "BenchConfig", "run_bench"]
