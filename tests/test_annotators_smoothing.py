"""Temporal filters: less jitter without lag or drift, tracks that keep their identity,
scene cuts that restart the averages."""

from __future__ import annotations

import numpy as np

from livevace.annotators.smoothing import (ExponentialAverage, OneEuroFilter, SceneCutDetector,
                                           TrackSmoother)

DT = 1 / 30


def test_one_euro_removes_jitter_when_still_and_follows_fast_motion() -> None:
    rng = np.random.default_rng(0)
    still = 0.5 + rng.normal(0, 0.01, 90)
    f = OneEuroFilter()
    out = np.array([f(np.array([x]), DT)[0] for x in still])
    assert np.std(np.diff(out[30:])) < 0.35 * np.std(np.diff(still[30:]))
    assert abs(out[30:].mean() - 0.5) < 0.005
    # a fast sweep: the speed term opens the filter, so it lags by little
    f.reset()
    sweep = np.linspace(0, 1, 30)
    out = np.array([f(np.array([x]), DT)[0] for x in sweep])
    assert abs(out[-1] - 1.0) < 0.1


def test_track_smoother_keeps_identities_when_the_detector_reorders_people() -> None:
    a = np.array([[0.2, 0.5, 1.0], [0.25, 0.6, 1.0]])
    b = np.array([[0.8, 0.5, 1.0], [0.85, 0.6, 1.0]])
    smooth = TrackSmoother()
    smooth([a, b], DT)
    step = np.array([0.01, 0.01, 0.0])
    out = smooth([b + step, a + step], DT)  # same people, listed the other way round
    assert out[0][:, 0].mean() > 0.7 and out[1][:, 0].mean() < 0.3
    assert np.all(out[0][:, 2] == 1.0)  # visibility passes through unfiltered
    jump = a + np.array([0.0, 0.4, 0.0])
    far = smooth([jump], DT)[0]  # a jump beyond max_jump starts a new track, unsmoothed
    np.testing.assert_allclose(far, jump)


def test_scene_cut_detector() -> None:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 128)[None, :, None] * np.ones((72, 1, 3))
    a = ramp.astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    cuts = SceneCutDetector()
    assert cuts(a)  # the first frame starts a scene
    assert not cuts(noisy)
    assert cuts(255 - a)


def test_exponential_average_and_restart() -> None:
    avg = ExponentialAverage(0.75)
    avg(np.zeros(4))
    np.testing.assert_allclose(avg(np.ones(4)), 0.25)
    np.testing.assert_allclose(avg(np.full(4, 3.0), restart=True), 3.0)
    np.testing.assert_allclose(avg(np.ones(5)), 1.0)  # a new shape restarts too


def test_interpolated_sets_follow_tracks_and_swap_newcomers_at_half_way() -> None:
    from livevace.annotators.smoothing import interpolate_sets

    stay_a, stay_b = np.zeros((2, 3)), np.ones((2, 3))
    gone, new = np.full((2, 3), 5.0), np.full((2, 3), 9.0)
    early = interpolate_sets([stay_a, gone], [1, 2], [stay_b, new], [1, 3], 0.25)
    late = interpolate_sets([stay_a, gone], [1, 2], [stay_b, new], [1, 3], 0.75)
    np.testing.assert_allclose(early[0], 0.25)
    assert len(early) == 2 and early[1][0, 0] == 5.0  # the leaving person, not yet the newcomer
    np.testing.assert_allclose(late[0], 0.75)
    assert len(late) == 2 and late[1][0, 0] == 9.0
