"""SR-IEM in PyTorch, written for this project: the thing a user would otherwise reach for.

Not part of the package (which never imports torch). ``compare_torch.py``
times it side by side with minisriem; ``tests/test_torch_reference.py``
checks, when torch is installed, that it computes minisriem's loss and
gradients (paper variant), so the comparison is between two implementations
of one model. Install torch with ``pip install -e ".[bench]"`` (the CPU
build ``torch==2.13.0``).

The model is the paper's variant of :class:`minisriem.model.SRIEM`, written
the way a PyTorch user writes it: autograd, ``nn.Parameter``,
``F.cross_entropy``, ``torch.optim.Adam(weight_decay=...)`` (coupled L2),
default or fused::

    Q = sigmoid(E_s Wq), K = sigmoid(E_s Wk)               (1), (2)
    C = sigmoid(Q K^T) / sqrt(d), 0 on the diagonal and padding   (3)
    alpha = C.sum(-1) / t;  beta = softmax(alpha) over real items  (4), (5)
    z_h = W0 [sum_i beta_i e_i ; e_t];  scores = z_h E[1:]^T       (6)-(8)

    python benchmarks/torch_sriem.py --data /tmp/x.npz --steps 100 --eval-batches 30

The last line holds the figures as ``name=value`` pairs.
"""

import argparse
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TorchSRIEM(nn.Module):
    """SR-IEM, paper variant. Parameters named and shaped as minisriem's."""

    def __init__(self, n_items, d=200, l=100, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(d)

        def uniform(*shape):
            return nn.Parameter((torch.rand(*shape, generator=gen) * 2 - 1) * bound)

        self.d = d
        self.E = uniform(n_items + 1, d)  # row 0: padding
        self.Wq = uniform(d, l)
        self.Wk = uniform(d, l)
        self.W0 = uniform(d, 2 * d)
        with torch.no_grad():
            self.E[0].zero_()

    def load_numpy(self, params):
        """Copy minisriem's ``model.params`` ("E", "Wq", "Wk", "W0") into this model."""
        with torch.no_grad():
            for name in ("E", "Wq", "Wk", "W0"):
                getattr(self, name).copy_(torch.from_numpy(np.asarray(params[name])))

    def session(self, seq, lens):
        """``z_h`` (B, d) of sessions ``seq`` (B, L) long, left-aligned, with lengths ``lens``."""
        B, L = seq.shape
        emb = F.embedding(seq, self.E)  # B,L,d
        real = torch.arange(L)[None, :] < lens[:, None]  # B,L
        others = real[:, :, None] & real[:, None, :] & ~torch.eye(L, dtype=torch.bool)
        Q = torch.sigmoid(emb @ self.Wq)
        K = torch.sigmoid(emb @ self.Wk)
        C = torch.sigmoid(Q @ K.transpose(1, 2)) / math.sqrt(self.d)  # B,L,L
        alpha = torch.where(others, C, 0.0).sum(-1) / lens[:, None]
        beta = torch.softmax(alpha.masked_fill(~real, -math.inf), dim=1)  # B,L
        z_l = torch.einsum("bl,bld->bd", beta, emb)
        z_s = emb[torch.arange(B), lens - 1]
        return torch.cat([z_l, z_s], dim=1) @ self.W0.T

    def forward(self, seq, lens):
        """Scores (B, n) of every item; column j is item j + 1."""
        return self.session(seq, lens) @ self.E[1:].T


def batch_tensors(seq, lens, targets):
    return (
        torch.as_tensor(np.asarray(seq, dtype=np.int64)),
        torch.as_tensor(np.asarray(lens, dtype=np.int64)),
        torch.as_tensor(np.asarray(targets, dtype=np.int64)),
    )


def loss_of(model, seq, lens, targets):
    return F.cross_entropy(model(seq, lens), targets - 1)


def train_rate(model, batches, warmup, fused):
    """Training examples per second (median step) with Adam, default or fused."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5, fused=fused)
    times = []
    for i, (seq, lens, targets) in enumerate(batches):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, seq, lens, targets)
        loss.backward()
        opt.step()
        loss.item()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return len(batches[0][2]) / statistics.median(times)


@torch.no_grad()
def eval_rate(model, batches, warmup):
    """Evaluation examples per second: scores of all items, the target's rank and the top 20."""
    times = []
    for i, (seq, lens, targets) in enumerate(batches):
        t0 = time.perf_counter()
        scores = model(seq, lens)
        target_score = scores.gather(1, (targets - 1)[:, None])
        rank = 1 + (scores > target_score).sum(1)
        top = scores.topk(20, dim=1).indices
        rank.numpy(), top.numpy()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return len(batches[0][2]) / statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help=".npz with train_*/test_* arrays and n_items")
    p.add_argument("--steps", type=int, default=100, help="timed training steps per Adam")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--eval-batches", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=512)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with np.load(args.data) as z:
        n_items = int(z["n_items"])
        train = [z[f"train_{k}"] for k in ("sessions", "lengths", "targets")]
        test = [z[f"test_{k}"] for k in ("sessions", "lengths", "targets")]
    rng = np.random.default_rng(0)
    count = args.warmup + args.steps
    order = rng.permutation(len(train[2]))[: count * args.batch_size]
    batches = [batch_tensors(*(a[i] for a in train)) for i in np.split(order, count)]
    figures = {"torch": torch.__version__, "threads": args.threads}
    for name, fused in (("torch_train_ex_per_s", False), ("torch_train_ex_per_s_fused", True)):
        model = TorchSRIEM(n_items)
        figures[name] = round(train_rate(model, batches, args.warmup, fused), 1)
    count = 2 + args.eval_batches
    size = args.eval_batch_size
    eval_batches = [
        batch_tensors(*(a[i * size : (i + 1) * size] for a in test)) for i in range(count)
    ]
    figures["torch_eval_ex_per_s"] = round(eval_rate(model.eval(), eval_batches, 2), 1)
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
