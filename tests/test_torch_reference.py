"""The project's PyTorch SR-IEM (benchmarks/torch_sriem.py) computes minisriem's numbers.

compare_torch.py times it against minisriem; this check makes sure the two
implement one model (paper variant): same loss and same gradients, in float64.
Skipped when torch is not installed (it is the optional ``bench`` extra).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from minisriem.gradcheck import random_session_batch
from minisriem.model import SRIEM

torch = pytest.importorskip("torch", reason="torch is the optional 'bench' extra")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import torch_sriem  # noqa: E402


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_torch_reference_has_minisriems_loss_and_gradients(backend):
    rng = np.random.default_rng(3)
    n = 40
    model = SRIEM(n, d=12, l=6, dtype=np.float64, backend=backend, seed=2)
    for w in model.params.values():
        w *= 3.0  # sizeable gradients everywhere
    item_seq, item_seq_len, targets = random_session_batch(rng, 11, 6, n)
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)

    ref = torch_sriem.TorchSRIEM(n, d=12, l=6).double()
    ref.load_numpy(model.params)
    ref_loss = torch_sriem.loss_of(ref, *torch_sriem.batch_tensors(item_seq, item_seq_len, targets))
    ref_loss.backward()
    assert float(ref_loss.detach()) == pytest.approx(loss, rel=1e-12)
    for name in ("E", "Wq", "Wk", "W0"):
        got = getattr(ref, name).grad.numpy()
        np.testing.assert_allclose(got, np.asarray(grads[name]), rtol=1e-9, atol=1e-12)
