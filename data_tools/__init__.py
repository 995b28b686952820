"""Data tools for minisriem: datasets in, padded arrays out.

Raw logs (CIKM Cup 2016 DIGINETICA, RecSys 2015 YOOCHOOSE, your own CSV)
and SR-GNN pickles are turned into one compact format with the SR-GNN
protocol; a synthetic dataset needs no download. Independent of
``minisriem``: nothing here imports it.

>>> from data_tools import load_dataset, split_validation
>>> ds = load_dataset("synthetic")
>>> train, valid = split_validation(ds.train, fraction=0.1)
>>> item_seq, item_seq_len, targets = train.padded(L=10)

Modules: ``load`` (load_dataset), ``datadir`` (where data lives),
``dataset`` (Dataset, our file format), ``split`` (Split, augmentation,
validation split), ``readers`` and ``textparse`` (raw files),
``protocol`` (SR-GNN preprocessing), ``srgnn`` (pickles), ``recbole``
and ``sessionrec`` (the other frameworks' files, read with ``clicklog``),
``synthetic``, ``fileio`` (atomic writes, fingerprints), ``cliopts``
(the commands' checked options); commands ``preprocess``, ``convert``, ``check_roundtrip``,
``stats``, ``make_fake_yoochoose``.
"""

from .datadir import resolve_data_dir
from .dataset import Dataset
from .errors import DataError
from .load import load_dataset
from .split import Split, split_validation

__all__ = ["DataError", "Dataset", "Split", "load_dataset", "resolve_data_dir", "split_validation"]
