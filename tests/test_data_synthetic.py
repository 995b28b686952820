"""The synthetic dataset: deterministic, planted structure, noise mask."""

import numpy as np

from data_tools import load_dataset


def test_same_seed_same_arrays_other_seed_other_arrays():
    a, b = load_dataset("synthetic", seed=7), load_dataset("synthetic", seed=7)
    c = load_dataset("synthetic", seed=8)
    for part in ("train", "test"):
        for field in ("offsets", "items", "targets", "session", "noise"):
            assert np.array_equal(
                getattr(getattr(a, part), field), getattr(getattr(b, part), field)
            )
    assert not np.array_equal(a.train.items[:500], c.train.items[:500])


def test_default_size():
    # how long generating takes is for a benchmark to measure, not a test
    ds = load_dataset("synthetic")
    assert 20_000 <= ds.stats["train_examples"] <= 40_000
    assert 500 <= ds.n_items <= 2000 and ds.item_ids[5] == 5
    assert ds.train.session.max() < len(ds.sessions_offsets) - 1
    assert np.all(np.diff(ds.train.session) >= 0)


def test_noise_mask_is_aligned_and_targets_follow_the_intent():
    ds = load_dataset("synthetic", n_sessions=400)
    group = (ds.train.items - 1) // ds.provenance["group_size"]
    target_group = (ds.train.targets - 1) // ds.provenance["group_size"]
    owner = np.repeat(np.arange(len(ds.train)), ds.train.lengths)
    on_intent = group == target_group[owner]
    # clicks marked as noise are exactly those off the target's group
    assert ds.train.noise.shape == ds.train.items.shape
    assert np.array_equal(ds.train.noise, ~on_intent)
    assert 0.05 < ds.train.noise.mean() < 0.7
    # the first click of a session is never noise
    assert not ds.train.noise[ds.train.offsets[:-1]].any()
    # intent clicks scatter around the session's centre: the target lies near the clean
    # clicks of its prefix on the group's ring (spread = standard deviation around the centre)
    size, spread = ds.provenance["group_size"], ds.provenance["spread"]
    dists = []
    for i in range(len(ds.train)):
        a, b = ds.train.offsets[i], ds.train.offsets[i + 1]
        clean = ds.train.items[a:b][~ds.train.noise[a:b]]
        d = (ds.train.targets[i] - clean) % size
        dists.append(np.minimum(d, size - d))
    dists = np.concatenate(dists)
    # two independent draws around one centre differ by spread * sqrt(2) * |N(0, 1)|
    assert np.median(dists) < 1.5 * spread
    assert np.mean(dists < 8 * spread) > 0.999
