"""What a setting costs, checked before anything is allocated.

A training run or a scoring batch whose arrays would not fit in memory is
refused with a one-line message naming the setting to change, before the
model or any batch exists (a NumPy ``MemoryError`` half-way through an epoch
says neither). :func:`check_item_ids` warns when a dataset's item ids are far
sparser than its items, since the model is sized by the largest id.
"""

import os
import warnings

GB = 1 << 30
SPARSE_IDS = 4
"""Warn when the largest item id is more than this many times the number of items in use
(YOOCHOOSE 1/64's SR-GNN pickles: ids to 37,483 with 17,376 in use, 2.2 times)."""


def memory_limit(max_memory_gb=0.0):
    """The memory limit in bytes: ``max_memory_gb``, or (0) the machine's physical memory."""
    if max_memory_gb:
        return int(max_memory_gb * GB)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GB


def training_bytes(n_items, config, eval_batch_size=512):
    """Bytes a training run of these settings needs, roughly, before any is allocated.

    The parameters (E is (n + 1) x d; the rest about 3 d^2 + 2 d l), their
    gradients and Adam's two moments, all float32, plus a training batch of
    scores, their softmax and gradient (3 x batch x n) and an evaluation
    batch of scores (batch x n).
    """
    d, l = config.d, config.l
    params = (n_items + 1) * d + 4 * d * d + 3 * d * max(l, d) + 4 * d
    scores = 3 * config.batch_size * (n_items + 1) + 2 * eval_batch_size * (n_items + 1)
    return 4 * (4 * params + scores)


def scoring_bytes(n_items, d, batch_size):
    """Bytes scoring needs: the model's parameters and a batch of scores (batch x n), float32."""
    return 4 * ((n_items + 1) * d + 3 * d * d + 2 * batch_size * (n_items + 1))


def check_memory(needed, limit, what, fix):
    """Refuse when ``needed`` bytes exceed ``limit``, saying what and how to fix it."""
    if needed > limit:
        raise ValueError(
            f"{what} needs about {needed / GB:,.1f} GB, more than the limit of "
            f"{limit / GB:,.1f} GB: {fix}, or raise the limit with --max-memory-gb"
        )


def check_item_ids(ds, warn=True):
    """Warn when the largest item id is far above the number of items in use."""
    used = int(ds.stats.get("items", ds.n_items)) if isinstance(ds.stats, dict) else ds.n_items
    if warn and used and ds.n_items > SPARSE_IDS * used and ds.n_items - used > 1000:
        warnings.warn(
            f"{ds.name}: the largest item id is {ds.n_items:,} but only {used:,} items are used; "
            "the model is sized by the largest id, so most of it is never trained "
            "(number the items 1..n to save memory and time)",
            stacklevel=3,
        )
