"""RecBole's atomic files, in and out.

RecBole (RUCAIBox/RecBole) reads tab-separated "atomic files" whose header
names each column and its type, ``name:type``. Two forms hold sessions:

``NAME.inter``, a raw session log
    header ``session_id:token	item_id:token	timestamp:float`` in any column
    order (other columns are ignored), one click per row. Tokens may be any
    text without tabs; the timestamp is seconds. It goes through our SR-GNN
    protocol (:mod:`data_tools.protocol`) like a custom CSV: clicks ordered
    by time within a session, rare items and short sessions dropped, the
    last ``test_days`` days for testing, items numbered by first appearance.
``NAME.train.inter`` and ``NAME.test.inter`` (and ``NAME.valid.inter``), the pre-split form
    header ``session_id:token	item_id_list:token_seq	item_id:token``, one
    example per row: the prefix (space-separated, oldest first) and the next
    item. These are read as prepared examples, in file order: nothing is
    dropped or reordered. Consecutive rows with the same ``session_id`` are
    one session. A ``NAME.valid.inter`` beside the training file is read as
    more training examples after it (with a warning): our trainer cuts its
    own validation split from the training sessions, so RecBole's would
    otherwise be lost. Items are numbered by first appearance (each row's list,
    then its target; training rows first), which for files written from
    SR-GNN pickles gives back the pickles' own ids; ``keep_ids`` uses integer
    tokens as the ids instead.

Exporting writes the pre-split form, so RecBole can run on exactly our
split; its session ids are 1..S for training and S+1.. for testing, and
items are written as their tokens, or else their raw ids.
"""

import os
import warnings
from array import array

import numpy as np

from .clicklog import find_columns, number_items, read_header, read_token_clicks
from .dataset import Dataset
from .errors import DataError
from .fileio import atomic_outputs, check_regular, fingerprint
from .protocol import run_protocol, to_dataset
from .readers import Clicks
from .split import Split, sessions_from_examples

RAW_COLUMNS = {"session": "session_id:token", "item": "item_id:token", "time": "timestamp:float"}
RAW_HEADER = "session_id:token\titem_id:token\ttimestamp:float"
SPLIT_COLUMNS = {
    "session": "session_id:token",
    "items": "item_id_list:token_seq",
    "target": "item_id:token",
}
SPLIT_HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token"
TRAIN_SUFFIX, TEST_SUFFIX, RAW_SUFFIX = ".train.inter", ".test.inter", ".inter"
VALID_SUFFIX = ".valid.inter"


def split_paths(folder, name):
    """``(FOLDER/NAME.train.inter, FOLDER/NAME.test.inter)``."""
    return os.path.join(folder, name + TRAIN_SUFFIX), os.path.join(folder, name + TEST_SUFFIX)


# ----------------------------------------------------------------------
# The raw log


def read_recbole_inter(path, block_bytes=1 << 24):
    """Read a RecBole ``.inter`` session log into the protocol's :class:`Clicks`.

    Parameters
    ----------
    path : str
    block_bytes : int

    Returns
    -------
    clicks : Clicks
        ``date`` is the timestamp in whole seconds; ``order`` the timestamp in
        microseconds (clicks within a session are ordered by it).
    tokens : list of str or None
        The item token of each item code when the tokens are not all
        integers (then ``item_raw`` holds the codes); None when ``item_raw``
        holds the integer tokens.
    """
    header = read_header(path, "\t")
    cols = find_columns(path, header, RAW_COLUMNS, RAW_HEADER)
    item_codes = {}
    rows = read_token_clicks(path, cols, RAW_COLUMNS, len(header), item_codes, block_bytes)
    text = [t.decode("utf-8", "replace") for t in item_codes]
    integer = all(t.isascii() and t.isdigit() and len(t) <= 18 for t in text)
    item_raw = (
        np.array([int(t) for t in text], dtype=np.int64)
        if integer
        else np.arange(len(text), dtype=np.int64)
    )
    clicks = Clicks(
        rows.session,
        rows.item.astype(np.int32),
        item_raw,
        np.floor(rows.time).astype(np.int64),
        np.round(rows.time * 1e6).astype(np.int64),
    )
    return clicks, None if integer else text


def prepare_recbole_inter(path, test_days=7, name=None, keep_times=False):
    """Run the SR-GNN protocol on a RecBole ``.inter`` session log.

    Parameters
    ----------
    path : str
    test_days : float
        The last ``test_days`` days are the test period.
    name : str, optional
        Default: the file name without ``.inter``.
    keep_times : bool
        Keep each click's timestamp (to the second) in the dataset.

    Returns
    -------
    Dataset
    """
    name = name or os.path.basename(path)[: -len(RAW_SUFFIX)]
    clicks, tokens = read_recbole_inter(path)
    source = {
        "source": fingerprint([path]),
        "input_format": "recbole-inter",
        "test_days": test_days,
    }
    prepared = run_protocol(clicks, test_days=test_days, path=path, keep_times=keep_times)
    ds = to_dataset(name, prepared, source)
    if tokens is not None:  # item_ids hold item codes: keep the tokens, number the ids 1..n
        ds.item_tokens = np.array([""] + [tokens[c] for c in ds.item_ids[1:].tolist()])
        ds.item_ids = np.arange(ds.n_items + 1, dtype=np.int64)
        ds.item_ids[0] = -1
    return ds


# ----------------------------------------------------------------------
# The pre-split benchmark form


class _Examples:
    """The rows of one pre-split file as item codes (before numbering)."""

    def __init__(self, lengths, items, targets, session):
        self.lengths, self.items, self.targets, self.session = lengths, items, targets, session


def _read_split_file(path, item_codes):
    header = read_header(path, "\t")
    cols = find_columns(path, header, SPLIT_COLUMNS, SPLIT_HEADER)
    n_fields = len(header)
    lengths, items, targets, session = array("q"), array("q"), array("q"), array("q")
    previous, run = None, -1
    code = item_codes.setdefault
    check_regular(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != n_fields:
                raise DataError(
                    f"{path}:{number}: expected {n_fields} tab-separated fields as in the header, "
                    f"found {len(parts)}; every row needs session_id, item_id_list and item_id"
                )
            prefix = parts[cols["items"]].split()
            target = parts[cols["target"]].strip()
            sid = parts[cols["session"]].strip()
            if not prefix or not target or not sid:
                missing = (
                    "item_id_list" if not prefix else "item_id" if not target else "session_id"
                )
                raise DataError(
                    f"{path}:{number}: {missing} is missing; every example needs a session, "
                    "at least one item before the target, and the target"
                )
            if sid != previous:
                previous, run = sid, run + 1
            lengths.append(len(prefix))
            items.extend(code(t, len(item_codes)) for t in prefix)
            targets.append(code(target, len(item_codes)))
            session.append(run)
    if not lengths:
        raise DataError(f"{path}: no data rows; the file holds only its header")
    return _Examples(
        *(np.frombuffer(a, dtype=np.int64) for a in (lengths, items, targets, session))
    )


def _to_split(rows, new_id):
    offsets = np.zeros(len(rows.lengths) + 1, dtype=np.int64)
    np.cumsum(rows.lengths, out=offsets[1:])
    return Split(offsets, new_id[rows.items], new_id[rows.targets], rows.session)


def read_recbole_split(train_path, test_path, name=None, keep_ids=False):
    """Read RecBole's pre-split ``NAME.train.inter`` and ``NAME.test.inter`` as examples.

    A ``NAME.valid.inter`` beside ``train_path`` joins the training examples,
    after the training file's rows (RecBole's validation sessions come between
    its training and test sessions), with a warning that says so.

    Parameters
    ----------
    train_path, test_path : str
    name : str, optional
        Default: the training file's name without ``.train.inter``.
    keep_ids : bool
        Use integer item tokens as the item ids (n = the largest), as SR-GNN
        pickles do; otherwise items are numbered 1..n by first appearance.

    Returns
    -------
    Dataset
        Training sessions (``sessions_*``) are each session's longest prefix
        plus its target.
    """
    if name is None:
        base = os.path.basename(train_path)
        name = base[: -len(TRAIN_SUFFIX)] if base.endswith(TRAIN_SUFFIX) else base
    item_codes = {}
    train_rows = _read_split_file(train_path, item_codes)
    valid_path = _valid_beside(train_path)
    if valid_path is not None:
        valid_rows = _read_split_file(valid_path, item_codes)
        train_rows = _concatenate(train_rows, valid_rows)
        warnings.warn(
            f"{valid_path}: its {len(valid_rows.lengths)} examples are read as training "
            "examples after the training file's; the trainer holds out its own validation split",
            stacklevel=2,
        )
    test_rows = _read_split_file(test_path, item_codes)
    order = np.concatenate((_reading_order(train_rows), _reading_order(test_rows)))
    new_id, item_ids, item_tokens = number_items(order, list(item_codes), keep_ids, train_path)
    train, test = _to_split(train_rows, new_id), _to_split(test_rows, new_id)
    s_offsets, s_items = sessions_from_examples(train)
    ds = Dataset(name, item_ids, train, test, s_offsets, s_items, item_tokens=item_tokens)
    ds.provenance = {
        "protocol": "RecBole pre-split atomic files imported as they are",
        "input_format": "recbole",
        "keep_ids": keep_ids,
        "source": fingerprint([p for p in (train_path, valid_path, test_path) if p]),
    }
    return ds


def _valid_beside(train_path):
    """``FOLDER/NAME.valid.inter`` when it exists beside ``FOLDER/NAME.train.inter``, else None."""
    if not train_path.endswith(TRAIN_SUFFIX):
        return None
    path = train_path[: -len(TRAIN_SUFFIX)] + VALID_SUFFIX
    return path if os.path.isfile(path) else None


def _concatenate(first, second):
    """The rows of two split files as one, ``second``'s sessions numbered after ``first``'s."""
    runs = int(first.session[-1]) + 1
    return _Examples(
        np.concatenate((first.lengths, second.lengths)),
        np.concatenate((first.items, second.items)),
        np.concatenate((first.targets, second.targets)),
        np.concatenate((first.session, second.session + runs)),
    )


def _reading_order(rows):
    """Item codes in reading order: each row's list, then its target."""
    offsets = np.zeros(len(rows.lengths) + 1, dtype=np.int64)
    np.cumsum(rows.lengths + 1, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    is_target = np.zeros(len(out), dtype=bool)
    is_target[offsets[1:] - 1] = True
    out[~is_target] = rows.items
    out[is_target] = rows.targets
    return out


def export_recbole(ds, folder, name=None, block=1 << 16):
    """Write a dataset as RecBole's pre-split atomic files, atomically.

    Parameters
    ----------
    ds : Dataset
    folder : str
        Receives ``NAME.train.inter`` and ``NAME.test.inter``; created if missing.
    name : str, optional
        Default: the dataset's name.
    block : int
        Rows formatted at once.

    Returns
    -------
    list of str
        The two paths written.
    """
    name = name or ds.name
    labels = _checked_labels(ds)
    os.makedirs(folder, exist_ok=True)
    paths = list(split_paths(folder, name))
    first_session = 1
    with atomic_outputs(paths) as temps:
        for temp, split in zip(temps, (ds.train, ds.test), strict=True):
            new_session = np.diff(split.session, prepend=split.session[:1] - 1) != 0
            sid = (np.cumsum(new_session) - 1 + first_session).tolist()
            first_session += int(new_session.sum())
            targets = split.targets.tolist()
            with open(temp, "w", encoding="utf-8", newline="\n") as f:
                f.write(SPLIT_HEADER + "\n")
                for a in range(0, len(split), block):
                    b = min(a + block, len(split))
                    flat = [
                        labels[i] for i in split.items[split.offsets[a] : split.offsets[b]].tolist()
                    ]
                    local = (split.offsets[a : b + 1] - split.offsets[a]).tolist()
                    f.write(
                        "".join(
                            f"{sid[i]}\t{' '.join(flat[local[i - a] : local[i - a + 1]])}"
                            f"\t{labels[targets[i]]}\n"
                            for i in range(a, b)
                        )
                    )
    return paths


def _checked_labels(ds):
    """The item labels, refusing any a token list cannot hold (spaces, tabs, line ends)."""
    labels = ds.item_labels()
    for label in labels[1:]:
        if not label or any(c.isspace() for c in label):
            raise DataError(
                f"{ds.name}: item token {label!r} is empty or holds white space, which "
                "RecBole's token_seq cannot hold; rename the item"
            )
    return labels
