"""A synthetic session dataset with structure a model can learn and you can see.

Items ``1..n_items`` fall into ``n_groups`` equal groups ("intents"): item
``i`` belongs to group ``(i - 1) // group_size``. Each session picks one
group and walks it: the group's items sit on a ring, and the next intent
item is 1, 2 or 3 steps further along (probabilities 0.6, 0.3, 0.1). So the
next item depends on the last *intent* item, and every group is equally
popular: popularity is a weak predictor.

Between intent clicks a session may hold off-intent "noise" clicks, items
drawn uniformly from the other groups, never the last click. Examples are
the usual prefixes, except that prefixes whose next click is noise are left
out: by construction noise cannot be predicted. ``Split.noise`` marks the
noise clicks inside every prefix, so one can check whether an importance
module gives them low weight.

Sessions are generated in time order; the last ``test_fraction`` of them are
the test set. The raw id of item ``i`` is ``i``.
"""

import numpy as np

from .dataset import Dataset
from .split import augment

STEPS = np.array([1, 2, 3])
STEP_P = np.array([0.6, 0.3, 0.1])


def make_synthetic(
    seed=0,
    n_items=1000,
    n_groups=20,
    n_sessions=8000,
    min_intent=3,
    max_intent=8,
    noise_rate=0.3,
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
        Number of intents.
    n_sessions : int
    min_intent, max_intent : int
        Range (inclusive) of the number of intent clicks per session.
    noise_rate : float
        Chance of one noise click in each gap between two intent clicks.
    test_fraction : float
        Share of the (most recent) sessions used for testing.
    name : str

    Returns
    -------
    Dataset
        With the defaults: about 30,000 training and 5,400 test examples.
        ``train.noise`` and ``test.noise`` are set.
    """
    if n_items % n_groups:
        raise ValueError("n_items must be a multiple of n_groups")
    rng = np.random.default_rng(seed)
    size = n_items // n_groups
    sessions, noise = [], []
    for _ in range(n_sessions):
        group = rng.integers(n_groups)
        k = rng.integers(min_intent, max_intent + 1)
        ring = (rng.integers(size) + np.cumsum(rng.choice(STEPS, size=k, p=STEP_P))) % size
        intent = 1 + group * size + ring  # k item ids
        seq, flag = [], []
        for j, item in enumerate(intent):
            seq.append(item)
            flag.append(False)
            if j < k - 1 and rng.random() < noise_rate:
                other = (group + rng.integers(1, n_groups)) % n_groups
                seq.append(1 + other * size + rng.integers(size))
                flag.append(True)
        sessions.append(seq)
        noise.append(flag)

    n_test = int(round(test_fraction * n_sessions))
    parts = []
    for seqs, flags in (
        (sessions[:-n_test], noise[:-n_test]),
        (sessions[-n_test:], noise[-n_test:]),
    ):
        lengths = np.array([len(s) for s in seqs])
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        items = np.concatenate(seqs).astype(np.int32)
        mask = np.concatenate(flags)
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
        "noise_rate": noise_rate,
    }
    return ds
