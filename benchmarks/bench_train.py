"""Training throughput of minisriem at DIGINETICA's shape, and where a step's time goes.

A step is what the trainer does per batch: gather the batch, the loss and
all gradients (``SRIEM.loss_and_grads``) and the Adam update (``Adam.step``).
Shape: 43,097 items, d = 200, l = 100, L = 10, batch 128, float32.

    python benchmarks/bench_train.py --steps 100                  # Numba kernels
    python benchmarks/bench_train.py --steps 20 --backend numpy   # the plain NumPy path
    python benchmarks/bench_train.py --data /tmp/sriem-torch-ref/synth.npz

Times ``--repeats`` runs of ``--steps`` steps after ``--warmup`` steps and
reports the median; then times each part of a step separately (the
breakdown) against its floor: the GEMMs at the BLAS's peak speed on a large
square product, and Adam over ``E`` at the memory bandwidth of a parallel copy.
The last line holds the figures as ``name=value`` pairs.
"""

import argparse
import time

import numpy as np
from _common import (
    N_TRAIN,
    environment,
    gemm_peak_gflops,
    get_data,
    median,
    peak_rss_mib,
    print_figures,
)

from minisriem import kernels, layers
from minisriem.model import SRIEM
from minisriem.optim import Adam


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=100, help="steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--variant", choices=["paper", "official"], default="paper")
    p.add_argument("--data", default=None, help=".npz with train_sessions/lengths/targets")
    p.add_argument("--breakdown-steps", type=int, default=20, help="0 = no breakdown")
    p.add_argument(
        "--block", type=int, default=None, help="items per block of the item passes (numba)"
    )
    return p.parse_args(argv)


def make_batches(seq, lens, targets, batch_size, count, seed=0):
    """``count`` batches of consecutive slices of a shuffled order, as an epoch takes them."""
    order = np.random.default_rng(seed).permutation(len(targets))
    starts = np.arange(count) * batch_size % (len(order) - batch_size)
    return [order[s : s + batch_size] for s in starts]


def train_step(model, opt, data, idx):
    seq, lens, targets = data
    loss, grads = model.loss_and_grads(seq[idx], lens[idx], targets[idx])
    opt.step(model.params, grads)
    return loss


class Timer:
    """Wall time per part of a step: ``with timer("gemm"): ...``; a part may
    be entered several times in a step, and its times are added up."""

    def __init__(self):
        self.times = {}  # name -> list of per-step totals (seconds)
        self._name = None

    def new_step(self):
        for totals in self.times.values():
            totals.append(0.0)

    def __call__(self, name):
        self._name = name
        return self

    def __enter__(self):
        self._t0 = time.perf_counter()

    def __exit__(self, *exc):
        totals = self.times.setdefault(self._name, [0.0])
        totals[-1] += time.perf_counter() - self._t0


def step_in_phases_numba(model, opt, data, idx, timer):
    """One step of the Numba backend, the same calls as ``SRIEM._loss_and_grads_numba``
    and ``Adam.step``, with a timer around each part."""
    seq, lens, targets = data
    E = model.params["E"]
    with timer("batch gather + checks"):
        seq, lens, targets = model._check_batch(seq[idx], lens[idx], targets[idx])
    B, n = len(targets), model.n_items
    parts, block = kernels.item_parts(), kernels.ITEM_BLOCK
    model.workspace.advance()
    P = model.workspace.get("P", (B * n,), model.dtype)
    target_idx = targets.astype(np.int64) - 1
    with kernels.blas_single_thread():
        with timer("session part (eq. 1-7, fwd+bwd, lookup rows)"):
            z_h, cache = model._session_forward_fast(seq, lens)
            z_h = np.ascontiguousarray(z_h)
        with timer("item pass 1: scores, softmax, dz_h (2 GEMMs)"):
            loss, dz_h, row_scale = kernels.item_pass_forward(
                z_h, E[1:], target_idx, P, parts, block
            )
        with timer("session part (eq. 1-7, fwd+bwd, lookup rows)"):
            looked_up, demb, grads = model._session_backward_to_emb(dz_h, cache)
            items, rows = kernels.lookup_rows(looked_up, demb)
    grads["E"] = kernels.ItemGradient(
        P, z_h, target_idx, row_scale, items, rows, E.shape, parts, block
    )
    opt.t += 1
    for name, w in model.params.items():
        part = (
            "item pass 2: dS, dE (1 GEMM), Adam on E" if name == "E" else "Adam, other parameters"
        )
        with timer(part):
            args = (opt.lr, opt.beta1, opt.beta2, opt.eps, opt.l2, opt.t)
            if name == "E":
                with kernels.blas_single_thread():
                    grads["E"].adam_step(w, opt.m[name], opt.v[name], *args)
            else:
                kernels.adam_step(w, grads[name], opt.m[name], opt.v[name], *args)


def step_in_phases_numpy(model, opt, data, idx, timer):
    """One step of the NumPy backend (the layers as written), timed by part."""
    seq, lens, targets = data
    E = model.params["E"]
    with timer("batch gather + checks"):
        seq, lens, targets = model._check_batch(seq[idx], lens[idx], targets[idx])
    with timer("session part (eq. 1-7, fwd+bwd, scatter)"):
        z_h, cache = model.session_forward(seq, lens)
    with timer("GEMM scores = z_h E^T"):
        scores, sc_cache = layers.scores_forward(z_h, E)
    with timer("softmax + cross-entropy (fused)"):
        _, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
        (dscores,) = layers.softmax_cross_entropy_backward(1.0, ce_cache)
    with timer("GEMM dz_h = dS E"):
        dz_h = dscores @ E[1:]
    with timer("GEMM dE = dS^T z_h"):
        dE = np.empty_like(E)
        dE[0] = 0
        np.matmul(dscores.T, z_h, out=dE[1:])
    with timer("session part (eq. 1-7, fwd+bwd, scatter)"):
        grads = model.session_backward(dz_h, cache)
        dE += grads["E"]
    grads["E"] = dE
    opt.t += 1
    for name, w in model.params.items():
        with timer("Adam, E" if name == "E" else "Adam, other parameters"):
            args = (opt.lr, opt.beta1, opt.beta2, opt.eps, opt.l2, opt.t)
            kernels.adam_step_numpy(w, grads[name], opt.m[name], opt.v[name], *args)


def copy_bandwidth_gbs(n_floats):
    """Memory bandwidth of a parallel copy between two arrays of ``E``'s size, in GB/s."""
    from numba import njit, prange

    @njit(parallel=True)
    def copy(dst, src):
        for i in prange(src.shape[0]):
            dst[i] = src[i]

    src = np.ones(n_floats, dtype=np.float32)
    dst = np.empty_like(src)
    copy(dst, src)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        copy(dst, src)
        times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / median(times) / 1e9


def main(argv=None):
    args = parse_args(argv)
    if args.block:
        kernels.ITEM_BLOCK = args.block
    t_start = time.perf_counter()
    seq, lens, targets, n_items = get_data(args.data, "train", N_TRAIN)
    data = (seq, lens, targets)
    B = args.batch_size
    model = SRIEM(n_items, variant=args.variant, backend=args.backend)
    opt = Adam(model.params, lr=1e-3, l2=1e-5, backend=args.backend)
    count = args.warmup + args.repeats * args.steps + max(args.breakdown_steps, 1) + 1
    batches = make_batches(seq, lens, targets, B, count)
    print(f"minisriem training benchmark: backend={args.backend} variant={args.variant}")
    print(f"  n_items={n_items} d=200 l=100 L={seq.shape[1]} batch={B} float32")
    print("  " + " ".join(f"{k}={v}" for k, v in environment().items()))

    # the first step compiles the kernels, or loads them from Numba's cache
    t0 = time.perf_counter()
    train_step(model, opt, data, batches[0])
    first_step_s = time.perf_counter() - t0
    print(f"  first step (compile or cache load + one step): {first_step_s:.2f} s")
    k = 1
    for _ in range(args.warmup):
        train_step(model, opt, data, batches[k])
        k += 1

    rates = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = train_step(model, opt, data, batches[k])
            k += 1
        seconds = time.perf_counter() - t0
        rates.append(args.steps * B / seconds)
        ms = 1e3 * seconds / args.steps
        print(
            f"  run {r + 1}: {args.steps} steps in {seconds:.2f} s, {ms:.1f} ms/step,"
            f" {rates[-1]:.0f} examples/s (loss {loss:.3f})"
        )
    rate = median(rates)
    step_ms = 1e3 * B / rate
    epoch_s = N_TRAIN / rate

    figures = {
        "backend": args.backend,
        "train_examples_per_s": round(rate, 1),
        "step_ms": round(step_ms, 2),
        "epoch_s": round(epoch_s, 1),
    }
    if args.breakdown_steps:
        timer = Timer()
        phases = step_in_phases_numba if args.backend == "numba" else step_in_phases_numpy
        for _ in range(args.breakdown_steps):
            timer.new_step()
            phases(model, opt, data, batches[k], timer)
            k += 1
        parts = {name: 1e3 * median(t) for name, t in timer.times.items()}
        parts["Python overhead and the rest"] = max(step_ms - sum(parts.values()), 0.0)
        peak = gemm_peak_gflops()
        gemm_floor_ms = 1e3 * 2.0 * B * 200 * n_items / (peak * 1e9)
        bandwidth = copy_bandwidth_gbs(model.params["E"].size)
        adam_floor_ms = 1e3 * 7 * model.params["E"].nbytes / (bandwidth * 1e9)
        floors = {name: gemm_floor_ms for name in parts if name.startswith("GEMM")}
        floors["Adam, E"] = adam_floor_ms
        for name in parts:  # the Numba backend's two passes over item blocks
            if name.startswith("item pass 1"):
                floors[name] = 2 * gemm_floor_ms
            elif name.startswith("item pass 2"):
                floors[name] = gemm_floor_ms + adam_floor_ms
        print(f"\n  one step, by part (median of {args.breakdown_steps} steps, in ms):")
        print(f"  {'part':48s} {'ms':>7s} {'share':>6s} {'floor':>7s}")
        for name, ms in parts.items():
            floor = f"{floors[name]:7.1f}" if name in floors else ""
            print(f"  {name:48s} {ms:7.1f} {ms / step_ms:6.0%} {floor}")
        floor_step_ms = 3 * gemm_floor_ms + adam_floor_ms
        print(f"  {'step':48s} {step_ms:7.1f}         {floor_step_ms:7.1f}")
        print(
            f"  floors: sgemm {peak:.0f} GFLOP/s on 2048^3 -> {3 * gemm_floor_ms:.1f} ms for the"
            f" three GEMMs; parallel copy {bandwidth:.1f} GB/s -> {adam_floor_ms:.1f} ms for Adam"
            f" over E (7 x 34.5 MB of traffic); step floor {floor_step_ms:.1f} ms,"
            f" this step is {step_ms / floor_step_ms:.2f}x it"
        )

        def total(prefix):
            return round(sum(ms for name, ms in parts.items() if name.startswith(prefix)), 1)

        figures.update(
            {
                "session_ms": total("session part"),
                "gemm_ms": total("GEMM"),
                "softmax_ce_ms": total("softmax"),
                "item_pass1_ms": total("item pass 1"),
                "item_pass2_ms": total("item pass 2"),
                "adam_ms": total("Adam"),
                "overhead_ms": round(parts["Python overhead and the rest"], 1),
                "sgemm_peak_gflops": round(peak, 1),
                "floor_step_ms": round(floor_step_ms, 1),
                "step_over_floor": round(step_ms / floor_step_ms, 2),
            }
        )
    figures["first_step_s"] = round(first_step_s, 2)
    figures["peak_rss_mib"] = round(peak_rss_mib())
    figures["wall_s"] = round(time.perf_counter() - t_start, 1)
    print_figures(figures)


if __name__ == "__main__":
    main()
