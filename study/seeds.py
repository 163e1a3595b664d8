"""Every random stream of a trial, by name: the one formula for each seed, in one place.

A trial's θ0 and everything its masks depend on follow its seed (`DenseSpec.seed`); its batch
order and augmentation draws follow its data seed (`TrialSpec.data_seed`: a stability copy's
noise seed, else the seed). The other streams are the seed spread by large primes, so that the
streams of the seeds a study uses start from distinct generator states. Where two streams meet
anyway, the stream's docstring says so: changing a formula changes what a trial computes, so it
would need a spec revision (`Spec.revision`).

Streams used as the seed itself: θ0 (`study.models.build_model(seed=...)`), the validation
split (`DataSpec.split_seed`) and the BatchNorm batches of an interpolation (`interpolate.path`,
the init seed).
"""

from __future__ import annotations

STEP = 1_000_003
"""Spacing of the position-addressed streams (one generator per epoch or step)."""
MASK = 1009
"""Spacing of the per-round mask streams."""
FRESH = 10_000_019
"""Offset of every fresh ("random reinit") initialisation."""
NOISE = 20_000_003
"""Offset of the noise seeds of a stability analysis' two copies."""


def batch_order(data_seed: int, epoch: int) -> int:
    """The permutation of the training split at `epoch` (`train.BatchOrder`)."""
    return data_seed * STEP + epoch


def augmentation(data_seed: int, step: int) -> int:
    """The augmentation draws of the batch at `step`. The same formula as `batch_order`, so
    step s's draws start from epoch s's permutation state (two different kinds of draw)."""
    return data_seed * STEP + step


def fresh_init(seed: int) -> int:
    """θ0 of a fresh initialisation (reinit, scratch_b, small_dense): never the trial's own."""
    return seed + FRESH


def mask_scores(seed: int, round_: int) -> int:
    """The generator of round r's weight-only criteria (random scores) and its supermask."""
    return seed * MASK + round_


def saliency(seed: int, source_round: int) -> int:
    """The training batches (and Hutchinson's probes) a data-dependent criterion scores the
    source net on: keyed by the source net's round, so every one-shot round scores the dense
    net on the same batches. The same formula as `batch_order(seed + 1, source_round)`: the
    batches are drawn from that epoch's permutation state."""
    return STEP * (seed + 1) + source_round


def random_mask(seed: int, round_: int) -> int:
    """random_prune's random mask at round r (LTH's control)."""
    return seed * MASK + round_ + 7


def copy_noise(seed: int) -> tuple[int, int]:
    """The noise seeds of a stability analysis' two copies: distinct from every init seed's own
    data order, and from those of every other seed."""
    return NOISE + 2 * seed, NOISE + 2 * seed + 1


# -- train small without the big net (issue 25) ---------------------------------------------
INIT = 30_000_017
"""Offset of the streams of the masks chosen at initialisation and of sparse training."""


def init_scores(seed: int) -> int:
    """The training batches an at-init criterion (snip, grasp) scores θ0 on: one draw per seed,
    shared by every round and criterion, so their masks at different densities nest."""
    return INIT + seed


def erk_mask(seed: int, round_: int) -> int:
    """random_erk's mask at round r, and the initial mask of set/rigl at round r."""
    return (INIT + seed) * MASK + round_


def shuffle_mask(seed: int, round_: int) -> int:
    """The Missing-the-Mark shuffle of an at-init mask within each layer, at round r."""
    return (INIT + seed) * MASK + round_ + 7


def grow(seed: int, round_: int, step: int) -> int:
    """SET's random regrowth at the mask update of `step` (position-addressed like the batch
    order, so a resumed run draws what an uninterrupted one draws)."""
    return (INIT + seed) * STEP + round_ * MASK + step
