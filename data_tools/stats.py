"""Print Table 1's rows for a dataset.

Usage::

    python -m data_tools.stats --dataset diginetica [--data-dir DIR]

``--dataset`` takes a name (prepared and cached on first use) or the path
of a prepared folder or ``dataset.npz``.
"""

import argparse
import sys

from .cliopts import run
from .load import load_dataset

ROWS = (
    ("clicks", "clicks", "{:,}"),
    ("training examples", "train_examples", "{:,}"),
    ("test examples", "test_examples", "{:,}"),
    ("items", "items", "{:,}"),
    ("average length", "avg_length", "{:.3f}"),
)


def format_table(stats, name):
    """Table 1's rows for one dataset, as text.

    Parameters
    ----------
    stats : dict
        ``Dataset.stats``.
    name : str

    Returns
    -------
    str
    """
    lines = [f"{'':<20}{name:>14}"]
    for label, key, fmt in ROWS:
        lines.append(f"{label:<20}{fmt.format(stats[key]):>14}")
    if stats.get("n_items", stats["items"]) != stats["items"]:
        lines.append(f"{'model outputs n':<20}{stats['n_items']:>14,}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m data_tools.stats", description=__doc__.split("\n")[0]
    )
    p.add_argument("--dataset", required=True, help="dataset name or prepared folder/.npz")
    p.add_argument("--data-dir", default=None, help="default: $MINISRIEM_DATA, else ./data")
    args = p.parse_args(argv)

    def body():
        ds = load_dataset(args.dataset, data_dir=args.data_dir)
        print(format_table(ds.stats, ds.name))
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
