"""What each train-small arm costs per trial beside reinit, measured side by side (issue 25).

One seed of the `train_small` space (its quickstart grid) at two widths and one lr: the dense
net and IMP rounds are trained once, then every arm of the last (sparsest) round is set up
(`study.trial.prepare`: the mask scoring) and trained alone (a pack of one), in interleaved
repeats; the medians and their ratio to reinit's are printed.

    python scripts/train_small_cost.py [--widths 0.5 2] [--lr 0.1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from study.space import load_space
from study.train import train_members
from study.trial import finish, prepare, run_trial


def store_fetch(store: dict):
    """`fetch` reading artifacts from an in-memory {(id, name): tensors} store."""
    return lambda spec, name: store[(spec.id, name)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space, _ = load_space("train_small")
    trials = [t for t in space.expand() if t.dense.seed == 0 and t.dense.train.lr == args.lr
              and not t.options.mask_shuffle]
    print(f"CPU: {platform.processor() or platform.machine()}, 1 torch thread; "
          f"medians of {args.repeats} interleaved repeats")
    for width in args.widths:
        mine = [t for t in trials if t.dense.model.width == width]
        last = max(t.round for t in mine)
        store: dict = {}
        fetch = store_fetch(store)
        for spec in [t for t in mine if t.stage in ("dense", "imp")]:
            record = run_trial(spec, fetch)
            store.update({(spec.id, k): v for k, v in record.artifacts.items()})
        arms = [t for t in mine if t.stage == "arm" and t.round == last]
        times: dict[str, list[tuple[float, float]]] = {t.arm: [] for t in arms}
        accuracy: dict[str, float] = {}
        for _ in range(args.repeats):
            for spec in arms:
                start = time.perf_counter()
                prepared = prepare(spec, fetch)
                ready = time.perf_counter()
                (result,) = train_members([prepared.member()], prepared.ctx.data,
                                          total_steps=prepared.setup.total_steps,
                                          start_step=prepared.setup.start_step)
                done = time.perf_counter()
                times[spec.arm].append((ready - start, done - ready))
                accuracy[spec.arm] = finish(prepared, result).metrics["final_test_acc"]
        base = sum(statistics.median(x) for x in zip(*times["reinit"]))
        print(f"\nwidth {width:g}, round {last}, lr {args.lr:g}:")
        print(f"  {'arm':<13}{'set-up s':>9}{'train s':>9}{'total/reinit':>14}{'test acc':>10}")
        for arm, rows in times.items():
            setup, trained = (statistics.median(x) for x in zip(*rows))
            print(f"  {arm:<13}{setup:>9.2f}{trained:>9.2f}{(setup + trained) / base:>14.2f}"
                  f"{accuracy[arm]:>10.3f}")


if __name__ == "__main__":
    main()
