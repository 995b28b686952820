"""``load_dataset``: one call from a dataset name to arrays the model can use."""

import os
import warnings

from .datadir import RAW_FILES, find_source, resolve_data_dir, user_cache_dir, writable
from .dataset import ARRAYS, load_prepared, read_info
from .errors import DataError
from .fileio import fingerprint
from .srgnn import import_srgnn
from .synthetic import make_synthetic

NAMES = ("synthetic", *RAW_FILES)


def load_dataset(name, data_dir=None, **synthetic_options):
    """Load a dataset by name, or from a prepared folder or ``.npz`` file.

    Parameters
    ----------
    name : str
        ``"synthetic"`` (generated in memory), ``"diginetica"``,
        ``"yoochoose1_64"``, ``"yoochoose1_4"``, ``"custom"``, any other
        folder name in the data folder holding SR-GNN pickles (or RecBole /
        session-rec files named after it; see :mod:`data_tools.datadir`),
        or a path to a prepared ``dataset.npz`` or the folder holding it.
    data_dir : str, optional
        See :func:`data_tools.resolve_data_dir` for where ``NAME`` is looked up.
    **synthetic_options
        Passed to :func:`data_tools.synthetic.make_synthetic` (``seed``,
        ``n_items``, ``n_sessions``, ...); only for ``"synthetic"``.

    Returns
    -------
    Dataset
        Raw data is prepared once and cached (see :mod:`data_tools.datadir`).
    """
    if name == "synthetic":
        return make_synthetic(**synthetic_options)
    if synthetic_options:
        raise TypeError(f"options {sorted(synthetic_options)} apply to 'synthetic' only")
    folder = os.path.join(resolve_data_dir(data_dir), name)
    if name not in NAMES:
        if os.path.isfile(name) or os.path.isfile(os.path.join(name, ARRAYS)):
            ds = load_prepared(name)
            ds.loaded_from = os.path.abspath(name)  # recorded by a run, to find it again
            return ds
        if not _is_folder_name(name) or not os.path.isdir(folder):
            raise DataError(
                f"unknown dataset {name!r}: use one of {', '.join(NAMES)}, a folder "
                f"DATA_DIR/NAME/ of SR-GNN pickles (none at {folder}/), "
                "or the path of a prepared dataset.npz or its folder"
            )
    kind, paths, options = find_source(name, folder)
    source = fingerprint(paths)
    caches = [os.path.join(folder, "prepared"), user_cache_dir(name)]
    for cache in caches:
        info = read_info(cache)
        if info is not None and info["provenance"].get("source") == source:
            try:
                return load_prepared(cache)
            except DataError as e:  # truncated or damaged: prepare it again below
                warnings.warn(f"{e}; rebuilding it from {paths[0]}", stacklevel=2)

    ds = _build(name, kind, folder, paths, options)
    for cache in caches:
        if writable(cache):
            try:
                ds.save(cache)
                break
            except OSError:
                continue
    else:
        warnings.warn(f"could not cache {name!r} in {' or '.join(caches)}", stacklevel=2)
    return ds


def _is_folder_name(name):
    """Whether ``name`` names a folder inside DATA_DIR (no path separators, not . or ..)."""
    return bool(name) and name not in (".", "..") and os.sep not in name and "/" not in name


def _build(name, kind, folder, paths, options):
    from .preprocess import prepare_custom, prepare_diginetica, prepare_yoochoose
    from .recbole import prepare_recbole_inter, read_recbole_split
    from .sessionrec import read_sessionrec

    if kind == "srgnn":
        return import_srgnn(folder, name)
    if kind == "recbole":
        return read_recbole_split(paths[0], paths[1], name=name)  # paths[2]: its valid file
    if kind == "recbole-inter":
        return prepare_recbole_inter(paths[0], name=name)
    if kind == "session-rec":
        return read_sessionrec(*paths, name=name)
    raw = paths[0]
    if name == "diginetica":
        return prepare_diginetica(raw)
    if name.startswith("yoochoose"):
        return prepare_yoochoose(raw, names=(name,))[name]
    ds = prepare_custom(raw, **options)
    ds.provenance["source"] = fingerprint(paths)  # include custom.json
    return ds
