"""Step 11: speed: each Numba kernel beside its NumPy twin, their agreement, their timing.

Run: python tutorials/11_speed.py
Time: about 12 s (CPU time on one thread, measured; about the wall time on an
idle machine); quick mode (MINISRIEM_TUTORIAL_QUICK=1, smaller arrays) about
2 s. Its kernels use the threads you give them: MINISRIEM_THREADS=2 shows the
parallel ones at work on two cores. Its timings are only as good as the
machine is quiet: on a busy one, compare the ratios, not the times.

Where the time goes
-------------------
On DIGINETICA (``n = 43,097`` items, ``d = 200``) one training step of a batch
of ``B = 128`` sessions spends little time in the importance module: it costs
``O(B (L^2 d + L d l))``, small numbers. The cost is in what touches all
``n`` items:

* the scores ``z_h E[1:]^T`` (eq. 8), a ``(B, d) x (d, n)`` matrix product,
  and its backward, two more; NumPy hands these to BLAS, which is already fast;
* the softmax cross-entropy over ``(B, n)`` scores (step 7): a maximum, an
  ``exp``, a sum and a scaling, four passes over 5.5 million numbers;
* Adam (step 9) over every parameter, the embedding ``E`` being 8.6 million
  floats: about a dozen whole-array NumPy operations, each one pass over memory;
* in evaluation, ranking the target among ``n`` scores and finding the top 20;
* the scatter-add of step 2, ``np.add.at``, which is correct but slow.

A *kernel* does one of these in a single compiled loop. ``minisriem/kernels.py``
writes them with Numba: ``@njit`` compiles an ordinary Python function with
loops to machine code the first time it is called (``cache=True`` keeps the
result on disk for later runs), and ``prange`` runs a loop's iterations on
all cores when they are independent, e.g. one row of scores each. Each kernel
sits beside a *twin*, ``name_numpy``, an independent vectorised NumPy
statement of the same computation. The twin is the documentation; the kernel
must agree with it, and the test suite checks that they do.

Why a kernel can win: the fused softmax reads each row once into the cache
and does all four passes there, and writes the gradient over the scores
instead of allocating new ``(B, n)`` arrays; Adam's kernel reads ``w, g, m, v``
and writes ``w, m, v`` in one pass, instead of a dozen passes with
temporaries; ranking counts and keeps a top-20 buffer in one pass instead of
sorting each row. Whether it wins, and by how much, depends on the machine:
measure, as below. (On the 2-core machine these tutorials were written on,
the fused softmax was no faster than NumPy, whose whole-array operations are
already vectorised; Adam was about 13x faster, ranking about a hundred times
on the default one thread and a few hundred times on two.)

Below, each pair runs on the same inputs. Agreement is the largest absolute
difference (float32 inputs, so about 1e-7 relative is expected: the two
versions add numbers in different orders). Timings are the best of a few
calls after a warm-up call; the first call's compile time is shown apart.
They depend on the machine and its load; the ratio is what to look at.
"""

import time

import common
import numpy as np
from checks import check_embedding_scatter_add

from minisriem import kernels


def best_time(fn, make_args, repeat):
    """Best wall time of ``fn(*make_args())`` over ``repeat`` calls (args made off the clock)."""
    times = []
    for _ in range(repeat):
        args = make_args()
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    rng = np.random.default_rng(0)
    B = common.quick(128, 32)
    n = common.quick(43097, 5000)
    d, L = common.quick(200, 64), 10
    repeat = common.quick(10, 3)
    print(f"sizes: B = {B}, n = {n}, d = {d}, L = {L}; best of {repeat} calls")

    scores = rng.standard_normal((B, n)).astype(np.float32) * 3
    target_idx = rng.integers(0, n, size=B)
    E = rng.standard_normal((n + 1, d)).astype(np.float32)
    g = rng.standard_normal(E.shape).astype(np.float32)
    m0 = np.abs(rng.standard_normal(E.shape)).astype(np.float32) * 0.1
    v0 = np.abs(rng.standard_normal(E.shape)).astype(np.float32) * 0.01
    item_seq = rng.integers(0, n + 1, size=(B, L))
    demb = rng.standard_normal((B, L, d)).astype(np.float32)
    adam_hp = (1e-3, 0.9, 0.999, 1e-8, 1e-5, 7)  # lr, beta1, beta2, eps, l2, t

    cases = {
        "softmax cross-entropy": (
            "softmax_xent_inplace",
            lambda: (scores.copy(), target_idx),
            lambda f, a: (f(*a), a[0]),
        ),
        "rank + top-20": (
            "rank_topk",
            lambda: (scores, target_idx, 20),
            lambda f, a: f(*a),
        ),
        "Adam step on E": (
            "adam_step",
            lambda: (E.copy(), g, m0.copy(), v0.copy(), *adam_hp),
            lambda f, a: (f(*a), a[0], a[2], a[3])[1:],
        ),
        "embedding scatter-add": (
            "embedding_scatter_add",
            lambda: (np.zeros_like(E), item_seq, demb),
            lambda f, a: (f(*a), a[0])[1],
        ),
    }
    timings = {}
    for label, (name, make_args, run) in cases.items():
        common.heading(label)
        kernel, twin = getattr(kernels, name), getattr(kernels, name + "_numpy")
        t0 = time.perf_counter()
        out_k = run(kernel, make_args())  # first call: compiles (or loads the cache)
        first = time.perf_counter() - t0
        out_t = run(twin, make_args())
        outs_k = out_k if isinstance(out_k, tuple) else (out_k,)
        outs_t = out_t if isinstance(out_t, tuple) else (out_t,)
        diffs = [
            float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
            for a, b in zip(outs_k, outs_t, strict=True)
        ]
        t_twin = best_time(twin, make_args, repeat)
        t_kernel = best_time(kernel, make_args, repeat)
        timings[label] = (t_twin, t_kernel)
        print(f"{name} vs {name}_numpy: largest difference {max(diffs):.1e}")
        print(
            f"  NumPy twin {1e3 * t_twin:8.2f} ms   Numba kernel {1e3 * t_kernel:8.2f} ms   "
            f"(x{t_twin / t_kernel:.1f}); first kernel call {1e3 * first:.0f} ms"
        )
        print(f"RESULT {name} agree={max(diffs) < 1e-4}")
        assert max(diffs) < 1e-4

    common.heading("The scatter-add pitfall, again")
    dE_right = np.zeros((6, 1))
    kernels.embedding_scatter_add(dE_right, np.array([[2, 2, 0]]), np.ones((1, 3, 1)))
    dE_wrong = np.zeros((6, 1))
    dE_wrong[np.array([2, 2, 0])] += 1.0
    print(
        "item 2 twice: kernel gives dE[2] =",
        dE_right[2, 0],
        "; dE[idx] += 1 gives",
        dE_wrong[2, 0],
        "and puts",
        dE_wrong[0, 0],
        "on the padding row",
    )

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    y = np.arange(len(timings))
    ax.barh(y + 0.2, [1e3 * t for t, _ in timings.values()], height=0.4, label="NumPy twin")
    ax.barh(y - 0.2, [1e3 * k for _, k in timings.values()], height=0.4, label="Numba kernel")
    ax.set_yticks(y, list(timings))
    ax.invert_yaxis()
    ax.set_xscale("log")  # the ratios span two orders of magnitude
    ax.set_xlabel("milliseconds per call (best of several; log scale)")
    ax.legend()
    ax.set_title(f"B={B}, n={n}, d={d}")
    common.save_figure(fig, "11_timing.png")


# ==========================================================================
# EXERCISE
# Write the embedding scatter-add: ``my_scatter_add(dE, item_seq, demb)``
# adds ``demb[b, i]`` into ``dE[item_seq[b, i]]`` for every position whose
# item is not 0, in place, returning nothing. Write it as plain loops, then
# put ``@numba.njit`` above it and time it against ``np.add.at``.
# Run this file to check it, or from the repository root:
#   python -c "from tutorials.checks import check_embedding_scatter_add as c; \
#              from minisriem import kernels; c(kernels.embedding_scatter_add)"
# ==========================================================================
def my_scatter_add(dE, item_seq, demb):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_embedding_scatter_add, my_scatter_add)
