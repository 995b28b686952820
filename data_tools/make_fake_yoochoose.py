"""Write a fake ``yoochoose-clicks.dat`` of realistic size and format.

Usage::

    python -m data_tools.make_fake_yoochoose --out /tmp/yoochoose-clicks.dat --rows 33000000

Rows look like the real file's (no header, ``,``-separated)::

    1,2014-04-07T10:51:09.277Z,214536502,0

Sessions have geometric lengths (mean about 3.3), items are Zipf-popular,
timestamps span 2014-04-01 to 2014-09-30 and increase within a session,
and categories are ``0``, ``S`` or a number. Only for measuring time and
memory: keep the file out of the repository.
"""

import argparse
import sys

import numpy as np

from .cliopts import integer, run
from .fileio import atomic_outputs

START = np.datetime64("2014-04-01T00:00:00.000", "ms")
SPAN_MS = 183 * 86400 * 1000


def write_fake(path, rows, seed=0, n_items=52000, block_sessions=200_000):
    """Write about ``rows`` click rows to ``path``.

    Parameters
    ----------
    path : str
    rows : int
    seed : int
    n_items : int
    block_sessions : int
        Sessions generated and written per block.

    Returns
    -------
    int
        The number of rows written (at least ``rows``).
    """
    rng = np.random.default_rng(seed)
    item_ids = 214500000 + rng.choice(900000, size=n_items, replace=False)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    n_blocks = max(1, round(rows / (block_sessions * 3.3)))  # mean session length 1/0.3
    written, session, block = 0, 1, 0
    with open(path, "w") as f:
        while written < rows:
            count = min(block_sessions, max(1, int((rows - written) / 3.3)))
            lengths = rng.geometric(0.3, size=count)
            n = int(lengths.sum())
            sess = np.repeat(np.arange(session, session + count), lengths)
            # sessions start in id order, spread over the block's share of the period
            lo = min(block, n_blocks - 1) * SPAN_MS // n_blocks
            start = np.sort(rng.integers(lo, lo + SPAN_MS // n_blocks, size=count))
            gaps = rng.integers(5_000, 120_000, size=n)
            gaps[np.cumsum(lengths) - lengths] = 0  # a session's first click is at its start
            within = np.cumsum(gaps) - np.repeat(
                np.cumsum(gaps)[np.cumsum(lengths) - lengths], lengths
            )
            stamp = START + np.repeat(start, lengths) + within
            items = item_ids[rng.choice(n_items, size=n, p=popularity)]
            category = np.where(rng.random(n) < 0.7, "0", np.where(rng.random(n) < 0.5, "S", "3"))
            text = np.char.add(np.datetime_as_string(stamp, unit="ms"), "Z")
            fields = (sess.astype(str), text, items.astype(str), category)
            lines = map(",".join, zip(*fields, strict=True))
            f.write("\n".join(lines))
            f.write("\n")
            written += n
            session += count
            block += 1
    return written


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m data_tools.make_fake_yoochoose")
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=integer(low=1, high=10**9), default=33_000_000)
    p.add_argument("--seed", type=integer(low=0, high=2**32 - 1), default=0)
    p.add_argument("--items", type=integer(low=1, high=900_000), default=52_000)
    args = p.parse_args(argv)

    def body():
        with atomic_outputs([args.out]) as (tmp,):
            n = write_fake(tmp, args.rows, seed=args.seed, n_items=args.items)
        print(f"wrote {n:,} rows to {args.out}")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
