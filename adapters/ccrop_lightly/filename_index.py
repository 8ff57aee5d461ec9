"""Filename -> dataset index for :class:`~ccrop_lightly.CCropCollate`, in two flat arrays instead of a dict.

The collate function is copied into every DataLoader worker (pickled under ``spawn``; under ``fork`` each dict
lookup touches the reference counts of the stored objects, so their pages are copied). A ``dict`` of 1.28M
ImageNet filenames is about 156 MB in memory and 49 MiB pickled; these arrays are 12 bytes per name (15 MB),
pickle as two raw buffers and are only read by a lookup.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Sequence

import numpy as np

_SALTS = 8  # hash keys tried before giving up on a list whose names collide (each try: ~N^2 / 2^65, 4e-8 at 1.28M)


class FilenameIndex:
    """The position of each of ``names`` (filename ``i`` is dataset index ``i``), found by ``get(name)``.

    Each name is kept as a 64-bit hash (blake2b of its UTF-8 bytes, stable across processes, unlike ``hash()``),
    sorted, with the position it came from: ``hashes`` ``(N,)`` uint64 ascending, ``order`` ``(N,)`` int32 (int64
    past 2^31 names). ``get`` hashes the name and binary-searches it. A name not in the list is found only if its
    hash equals a listed name's: a chance of about ``N / 2^64`` per unknown name (1e-13 at 1.28M).

    Raises:
        ValueError: a name that appears twice, naming it and its first two indices (the lowest such second index).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.examples: tuple[str, ...] = tuple(names[:3])  # for the messages of unknown names
        for salt in range(_SALTS):
            hashes = name_hashes(names, salt)
            order = np.argsort(hashes, kind="stable")  # equal hashes keep index order
            ordered = hashes[order]
            if _check_unique(names, ordered, order):
                break
        else:  # pragma: no cover - 8 salts with distinct-name collisions: never seen
            raise RuntimeError(f"FilenameIndex: {len(names)} filenames collide in {_SALTS} hash keys")
        self.salt = salt
        self.hashes = ordered
        self.order = order.astype(np.int32 if len(names) < 2**31 else np.int64)

    def __len__(self) -> int:
        return len(self.hashes)

    def get(self, name: str) -> int | None:
        """The index of ``name``, or ``None`` when it is not one of the names."""
        key = _name_hash(name, _salt_key(self.salt))
        slot = int(self.hashes.searchsorted(np.uint64(key)))
        if slot < len(self.hashes) and int(self.hashes[slot]) == key:
            return int(self.order[slot])
        return None


def name_hashes(names: Sequence[str], salt: int = 0) -> np.ndarray:
    """``(N,)`` uint64: 64-bit blake2b of each name's UTF-8 bytes (lone surrogates of ``os.fsdecode`` kept), keyed
    by ``salt``."""
    key = _salt_key(salt)
    return np.fromiter((_name_hash(name, key) for name in names), dtype=np.uint64, count=len(names))


def _salt_key(salt: int) -> bytes:
    return salt.to_bytes(8, "little")


def _name_hash(name: str, key: bytes) -> int:
    """The 64-bit blake2b of ``name`` keyed by ``key``, as a Python int in ``[0, 2^64)``."""
    return int.from_bytes(blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8, salt=key).digest(), "little")


def _check_unique(names: Sequence[str], ordered: np.ndarray, order: np.ndarray) -> bool:
    """Raise for a name listed twice (the one whose second index is lowest, as a scan in index order finds it);
    ``False`` when two different names share a hash (try another salt), else ``True``."""
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(same) == 0:
        return True
    pairs = [(int(order[k]), int(order[k + 1])) for k in same]  # (earlier, later) index: the sort is stable
    repeated = [(later, earlier) for earlier, later in pairs if names[earlier] == names[later]]
    if repeated:
        later, earlier = min(repeated)
        raise ValueError(
            f"filename {names[later]!r} appears twice (indices {earlier} and {later}); "
            "filenames must identify samples uniquely (a ConcatDataset of folders with the same "
            "names? wrap it: IndexedDataset(ConcatDataset([...])), whose keys are indices)"
        )
    return False
