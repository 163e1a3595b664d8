"""The plan's time estimate: packs as the scheduler forms them, each timed at its size."""

import math
from collections import Counter

import pytest

from study import estimate as est
from study.pack import pack_key
from study.plan import budget
from study.space import load_space


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
    groups = Counter(pack_key(t) for t in trials)
    assert one.packs == sum(math.ceil(n / 4) for n in groups.values())
    assert one.steps == sum(budget(t) for t in trials)
    assert one.overhead_s == pytest.approx(est.TRIAL_OVERHEAD_S * len(trials))
    two = est.estimate(space, trials, pack_size=4, slots=2)
    assert two.training_s == pytest.approx(one.training_s)
    assert two.wall_s - est.STARTUP_S == pytest.approx((one.wall_s - est.STARTUP_S) / 2)
    assert set(timed) <= {1, 2, 3, 4}  # k = 1 and the largest asked for, per net shape
    bigger = est.estimate(space, trials, pack_size=16, slots=1)
    assert bigger.packs < one.packs and bigger.training_s < one.training_s  # fixed cost shared


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
