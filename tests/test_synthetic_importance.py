"""On the synthetic data the released code's weights learn to spot noise; the paper's cannot.

A quick version of ``benchmarks/synthetic_importance.py``: both variants
trained with the package's trainer on a small synthetic dataset, then the
weights ``beta`` of the test prefixes are read against the planted noise
mask. (The benchmark measures the full quick-start runs and the accuracy.)
"""

import numpy as np
import pytest

from data_tools import load_dataset
from minisriem.workflow import train


def noise_and_clean_weight(model, split, L=10):
    """Mean ``t * beta`` over noise clicks and over clean clicks of prefixes with both.

    1 is the mean-pooling weight ``1/t``.
    """
    seq, lens, _ = split.padded(L)
    kept = np.minimum(split.lengths, L)
    cols = np.arange(L)
    real = cols[None, :] < kept[:, None]
    where = np.where(real, (split.offsets[1:] - kept)[:, None] + cols[None, :], 0)
    noise = real & split.noise[where]
    both = noise.any(axis=1) & (real & ~noise).any(axis=1)
    tb = model.item_weights(seq, lens) * lens[:, None]
    return float(tb[both[:, None] & noise].mean()), float(tb[both[:, None] & real & ~noise].mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ds = load_dataset("synthetic", n_sessions=2500, seed=3)
    models = {}
    for variant in ("paper", "official"):
        result = train(
            ds,
            out=str(tmp_path_factory.mktemp(variant)),
            progress=False,
            log=lambda line: None,
            variant=variant,
            d=32,
            l=16,
            batch_size=16,  # many small steps: the weights start to move after a few hundred
            epochs=3,
        )
        models[variant] = result.load_model().model
    return ds, models


def test_paper_weights_stay_within_their_bound(trained):
    """eq. (3)-(5) as printed: beta_i / beta_j <= exp((t-1)/t * 0.5 / sqrt(d)) (step 5)."""
    ds, models = trained
    seq, lens, _ = ds.test.padded(10)
    beta = models["paper"].item_weights(seq, lens).astype(np.float64)
    real = np.arange(10)[None, :] < lens[:, None]
    ratio = np.where(real, beta, 0).max(axis=1) / np.where(real, beta, np.inf).min(axis=1)
    bound = np.exp((lens - 1) / lens * 0.5 / np.sqrt(models["paper"].d))
    assert np.all(ratio <= bound * (1 + 1e-6))


def test_official_weights_are_lower_on_noise_clicks(trained):
    ds, models = trained
    noisy, clean = noise_and_clean_weight(models["official"], ds.test)
    assert noisy < clean - 0.01, (noisy, clean)
    noisy_p, clean_p = noise_and_clean_weight(models["paper"], ds.test)
    assert abs(noisy_p - clean_p) < 0.01, (noisy_p, clean_p)  # the paper's can hardly differ
