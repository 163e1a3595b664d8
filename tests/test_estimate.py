"""The plan's time estimate: packs as the scheduler forms them, each timed at its size."""

import pytest

from study import estimate as est
from study.pack import pack_key
from study.plan import budget
from study.space import load_space

SHORT = ("from study.space import Space\nspace = Space(name='short', "
         "model={'name': 'mlp', 'hidden': [16, 16]}, train={'steps': 40, 'eval_every': 20}, "
         "prune={'rounds': 2, 'rate': 0.5}, arms=['reinit', 'scratch_b', 'finetune'], "
         "seeds=[0, 1, 2], grid={'model.width': [0.5, 1.0]})\n")
"""Groups of three seeds, of 40-steps trials: a pack of 8 takes two of them whole."""


@pytest.fixture(scope="module")
def smoke():
    space, _ = load_space("smoke")
    return space, space.expand()


@pytest.mark.timeout(120)
def test_the_estimate_prices_each_predicted_pack_and_shares_them_among_the_slots(smoke,
                                                                              monkeypatch):
    space, trials = smoke
    timed = []

    def fake_time(self, spec, k):  # a pack's step: 1 ms fixed + 0.5 ms per member
        timed.append(k)
        return 1e-3 + 0.5e-3 * k

    monkeypatch.setattr(est._PackTimer, "_time", fake_time)
    one = est.estimate(space, trials, pack_size=4, slots=1)
    assert one.packs == len(est.planned_packs(trials, 4))
    assert one.steps == sum(budget(t) for t in trials)
    assert one.overhead_s == pytest.approx(est.TRIAL_OVERHEAD_S * len(trials))
    two = est.estimate(space, trials, pack_size=4, slots=2)
    assert two.training_s == pytest.approx(one.training_s)
    assert two.wall_s - est.STARTUP_S == pytest.approx((one.wall_s - est.STARTUP_S) / 2)
    assert set(timed) <= {1, 2, 3, 4}  # k = 1 and the largest asked for, per net shape
    bigger = est.estimate(space, trials, pack_size=16, slots=1)
    # whole short groups ride along in fewer packs; each group is still its own stacked loop,
    # timed at its own size (so bigger packs need not train faster)
    assert bigger.packs < one.packs


@pytest.mark.timeout(120)
def test_interpolation_between_timed_pack_sizes_is_linear_in_k(smoke, monkeypatch):
    space, trials = smoke
    monkeypatch.setattr(est._PackTimer, "_time", lambda self, spec, k: 1.0 + 2.0 * k)
    timer = est._PackTimer(1, "cpu")
    assert timer.seconds_per_step(trials[0], 9) == 19.0
    assert timer.seconds_per_step(trials[0], 5) == 11.0
    assert timer.seconds_per_step(trials[0], 12) == 25.0  # beyond the largest: timed


@pytest.mark.timeout(120)
def test_a_pack_is_timed_on_the_real_loop_with_its_members(smoke, monkeypatch):
    space, trials = smoke
    seen = []
    real = est.train_members

    def spy(members, data, **kwargs):
        seen.append((len(members), kwargs["total_steps"], kwargs["stacked"]))
        return real(members, data, **kwargs)

    monkeypatch.setattr(est, "train_members", spy)
    dense = next(t for t in trials if t.arm == "dense")
    seconds = est._PackTimer(1, "cpu")._time(dense, 8)
    assert 0 < seconds < 10
    assert seen == [(8, est.WARMUP_STEPS, True)] + [(8, est.CALIBRATION_STEPS, True)] * 2


@pytest.mark.timeout(120)
def test_the_plan_releases_the_packs_a_sweep_releases_short_groups_merged(tmp_path):
    from study.sweep import DependencySearcher

    path = tmp_path / "short.py"
    path.write_text(SHORT)
    space, _ = load_space(str(path))
    trials = space.expand()
    searcher, swept = DependencySearcher(trials, set(), pack_size=8), []
    while isinstance(suggested := searcher.suggest(f"pack{len(swept)}"), dict):
        swept.append(suggested["ids"])  # each pack finishes before the next is asked for
        searcher.on_trial_complete(f"pack{len(swept) - 1}", {"failed": "{}"})
    planned = est.planned_packs(trials, 8)
    assert [[t.id for t in pack] for pack in planned] == swept
    assert sum(len(pack) for pack in planned) == len(trials)
    merged = [pack for pack in planned if len({pack_key(t) for t in pack}) > 1]
    assert merged  # short groups of other shapes ride along: never so in groups sliced by size


@pytest.mark.timeout(120)
def test_the_plan_counts_parents_outside_the_launch_as_done(smoke):
    _, trials = smoke
    arms = [t for t in trials if t.stage == "arm"]  # their dense nets and rounds are done
    planned = est.planned_packs(arms, 16)
    assert sorted(t.id for pack in planned for t in pack) == sorted(t.id for t in arms)
