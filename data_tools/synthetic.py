"""A synthetic session dataset where a session's stray clicks cost accuracy.

Items ``1..n_items`` fall into ``n_groups`` equal groups ("intents"): item
``i`` belongs to group ``(i - 1) // group_size``, and each group's items sit
on a ring. A session picks one group and a *centre* on its ring, the thing
the user is after (a price, a style); every intent click is an item near the
centre, ``centre + round(spread * N(0, 1))`` along the ring, independently
of the others. So the next intent click is best guessed from the centre of
the session's intent clicks, and each of them says a little about it; the
last click is no better a guide than any other.

After each intent click but the last, with probability ``noise_rate``, the
session holds 1 to ``max_noise`` off-intent "noise" clicks: items drawn
uniformly from the other groups. The first click is never noise. Examples
are the usual prefixes, except that prefixes whose next click is noise are
left out: by construction noise cannot be predicted. ``Split.noise`` marks
the noise clicks inside every prefix, so one can check whether an importance
module gives them low weight.

Noise matters here: mean pooling over a prefix mixes the noise clicks into
the estimate of the centre. A model trained and tested on the same prefixes
with the noise clicks *removed* (an oracle importance) reaches a Recall@20
about 8 points higher than one that sees them (``python -m minisriem.train``
settings, measured while designing this generator).

Sessions are generated in time order; the last ``test_fraction`` of them are
the test set. The raw id of item ``i`` is ``i``.
"""

import numpy as np

from .dataset import Dataset
from .split import augment


def make_synthetic(
    seed=0,
    n_items=1000,
    n_groups=4,
    n_sessions=8000,
    min_intent=3,
    max_intent=8,
    spread=8.0,
    noise_rate=0.7,
    max_noise=2,
    test_fraction=0.15,
    name="synthetic",
):
    """Generate the synthetic dataset (deterministic given ``seed``).

    Parameters
    ----------
    seed : int
    n_items : int
        Divisible by ``n_groups``.
    n_groups : int
        Number of intents, at least 2 (noise comes from the other groups).
    n_sessions : int
    min_intent, max_intent : int
        Range (inclusive) of the number of intent clicks per session.
    spread : float
        Standard deviation, in ring positions, of an intent click around the
        session's centre.
    noise_rate : float
        Chance of noise after each intent click but the last.
    max_noise : int
        The number of noise clicks there is uniform in ``1..max_noise``.
    test_fraction : float
        Share of the (most recent) sessions used for testing.
    name : str

    Returns
    -------
    Dataset
        With the defaults: about 30,000 training and 5,500 test examples;
        about half of the prefix clicks are noise, and most prefixes end
        with one. ``train.noise`` and ``test.noise`` are set.
    """
    if n_items % n_groups:
        raise ValueError("n_items must be a multiple of n_groups")
    if n_groups < 2:
        raise ValueError("n_groups must be at least 2: noise clicks come from the other groups")
    rng = np.random.default_rng(seed)
    size = n_items // n_groups
    # every session: its group, its number of intent clicks, the centre of its intent
    group = rng.integers(n_groups, size=n_sessions)
    k = rng.integers(min_intent, max_intent + 1, size=n_sessions)
    centre = rng.integers(size, size=n_sessions)
    # every intent click (K of them, session by session): where it sits on its group's ring
    owner = np.repeat(np.arange(n_sessions), k)  # K
    ring = np.round(centre[owner] + spread * rng.standard_normal(len(owner))).astype(np.int64)
    intent = 1 + group[owner] * size + ring % size  # K item ids
    # how many noise clicks follow each intent click: none after a session's last one
    last = np.cumsum(k) - 1
    some = rng.random(len(owner)) < noise_rate
    n_noise = np.where(some, rng.integers(1, max_noise + 1, size=len(owner)), 0)
    n_noise[last] = 0
    # the noise clicks themselves, uniform over the other groups
    noise_owner = np.repeat(owner, n_noise)
    other = (group[noise_owner] + rng.integers(1, n_groups, size=len(noise_owner))) % n_groups
    noise_items = 1 + other * size + rng.integers(size, size=len(noise_owner))
    # lay the clicks out: each intent click, then its noise clicks
    slot = 1 + n_noise  # K: clicks per intent click
    start = np.concatenate(([0], np.cumsum(slot)[:-1]))  # K: where each intent click goes
    clicks = np.empty(int(slot.sum()), dtype=np.int64)
    is_noise = np.ones(len(clicks), dtype=bool)
    clicks[start] = intent
    is_noise[start] = False
    clicks[is_noise] = noise_items
    session_len = np.bincount(owner, weights=slot, minlength=n_sessions).astype(np.int64)
    session_off = np.concatenate(([0], np.cumsum(session_len)))

    n_test = int(round(test_fraction * n_sessions))
    parts = []
    for first, stop in ((0, n_sessions - n_test), (n_sessions - n_test, n_sessions)):
        offsets = session_off[first : stop + 1] - session_off[first]
        items = clicks[session_off[first] : session_off[stop]].astype(np.int32)
        mask = is_noise[session_off[first] : session_off[stop]]
        examples = augment(offsets, items, noise=mask)
        # drop examples whose target is a noise click: prefix length j has target x_{j+1}
        target_pos = offsets[examples.session] + examples.lengths
        parts.append((offsets, items, examples.subset(~mask[target_pos])))

    (s_offsets, s_items, train), (_, _, test) = parts
    item_ids = np.arange(n_items + 1, dtype=np.int64)
    item_ids[0] = -1
    ds = Dataset(name, item_ids, train, test, s_offsets, s_items)
    ds.provenance = {
        "generator": "data_tools.synthetic.make_synthetic",
        "seed": seed,
        "n_groups": n_groups,
        "group_size": size,
        "group_of_item": "(item - 1) // group_size",
        "spread": spread,
        "noise_rate": noise_rate,
        "max_noise": max_noise,
    }
    return ds
