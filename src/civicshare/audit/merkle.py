"""RFC 9162 §2.1 Merkle trees: hashing, a compact frontier for appends, proofs and their verification.

Pure functions with no I/O. Stored trees are addressed by perfect subtrees: node ``(level, index)`` is the
root of the perfect subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the
leaf hashes. Every hash the RFC's recursion needs is a right fold of such nodes, so building a proof is
arithmetic on sizes, one batched ``lookup`` of stored nodes, then hashing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from civicshare.errors import IntegrityError, UsageError

HASH_SIZE = 32

Node = tuple[int, int]
Lookup = Callable[[set[Node]], Mapping[Node, bytes]]
Range = tuple[int, int]

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 9162 leaf hash: SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 interior hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


EMPTY_ROOT: bytes = _sha256(b"").digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise UsageError(f"{what} must be a {HASH_SIZE}-byte hash.")


def _check_count(value: int, what: str, minimum: int) -> None:
    # bool is an int subclass; a True tree size is a bug in the caller, not a size of 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{what} must be an integer of at least {minimum}, not {value!r}.")


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of a range's perfect subtrees (largest first) into the range's MTH."""
    result = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        result = _sha256(b"\x01" + hashes[i] + result).digest()
    return result


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole tree given all its leaf hashes; EMPTY_ROOT for no leaves."""
    for i, leaf in enumerate(leaf_hashes):
        _check_hash(leaf, f"Leaf hash {i}")
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        # An odd node out is promoted unchanged, which is exactly RFC 9162's unbalanced split.
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return bytes(level[0])


@dataclass
class Frontier:
    """The compact state of a growing tree: the roots of its perfect subtrees ("peaks"), largest first.

    Appending needs no storage reads; the root is a fold of the peaks. ``len(peaks)`` always equals the
    number of set bits in ``size``, and peak ``i`` is the node for the i-th set bit from the top.
    """

    size: int = 0
    peaks: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_count(self.size, "A tree size", 0)
        if len(self.peaks) != self.size.bit_count():
            raise UsageError(f"A tree of size {self.size} has {self.size.bit_count()} peaks, not {len(self.peaks)}.")
        for i, peak in enumerate(self.peaks):
            _check_hash(peak, f"Peak {i}")
        # A private copy, so appending never changes a list the caller still holds.
        self.peaks = [bytes(peak) for peak in self.peaks]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the internal nodes it completes as ``(level, index, hash)``, level >= 1.

        The nodes come lowest first; the caller stores them (and the leaf at ``(0, old size)``) so that
        proofs can be built later.
        """
        _check_hash(leaf, "A leaf hash")
        position = self.size
        completed: list[tuple[int, int, bytes]] = []
        digest = bytes(leaf)
        level = 0
        # Each trailing one bit of the old size is a peak of the same height as the growing node.
        while (position >> level) & 1:
            digest = node_hash(self.peaks.pop(), digest)
            level += 1
            completed.append((level, position >> level, digest))
        self.peaks.append(digest)
        self.size = position + 1
        return completed

    def root(self) -> bytes:
        """MTH of the whole tree (EMPTY_ROOT for size 0)."""
        return _fold(self.peaks) if self.peaks else EMPTY_ROOT

    def to_bytes(self) -> bytes:
        """The peaks concatenated, largest first; the size is stored alongside by the caller."""
        return b"".join(self.peaks)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        """Rebuild a frontier from ``to_bytes`` output; UsageError if the length does not fit ``size``."""
        _check_count(size, "A tree size", 0)
        expected = HASH_SIZE * size.bit_count()
        if len(data) != expected:
            raise UsageError(f"A frontier for tree size {size} is {expected} bytes, not {len(data)}.")
        data = bytes(data)
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, expected, HASH_SIZE)])


# Building proofs -------------------------------------------------------------------------------------


def _nodes_of(start: int, end: int) -> list[Node]:
    """perfect_nodes without argument checks, for ranges the proof code derives itself."""
    size = end - start
    if not size & (size - 1):
        # A perfect range is one node; most ranges in a proof are perfect.
        level = size.bit_length() - 1
        return [(level, start >> level)]
    nodes: list[Node] = []
    for level in range(size.bit_length() - 1, -1, -1):
        if (size >> level) & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def perfect_nodes(start: int, end: int) -> list[Node]:
    """The aligned perfect subtrees, largest first, whose right fold is MTH(D[start:end]).

    The range must be one that occurs in RFC 9162's recursion: non-empty, and ``start`` a multiple of a
    power of two at least ``end - start`` (any ``[0, n)`` qualifies). Other ranges raise UsageError, since
    their MTH is not defined by the tree.
    """
    _check_count(start, "A range start", 0)
    _check_count(end, "A range end", start + 1)
    size = end - start
    if start and (start & -start) < size:
        raise UsageError(f"The range [{start}, {end}) is not a subtree of any Merkle tree.")
    return _nodes_of(start, end)


def _inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose MTHs make up PATH(index, D[0:size]), leaf end first."""
    ranges: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The ranges whose MTHs make up PROOF(old_size, D[0:new_size]), innermost first."""
    ranges: list[Range] = []
    lo, hi, whole = 0, new_size, True
    while old_size != hi:
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if old_size <= mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo, whole = mid, False
    # SUBPROOF(m, D[m], false) ends with MTH(D[m]); with true (the old tree itself) it ends empty.
    if not whole:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _hashes_of(ranges: Sequence[Range], lookup: Lookup) -> list[bytes]:
    """MTH of each range, from one batched lookup of all the perfect subtrees they need."""
    if not ranges:
        return []
    per_range = [_nodes_of(start, end) for start, end in ranges]
    wanted = {node for nodes in per_range for node in nodes}
    found = lookup(wanted)
    stored: dict[Node, bytes] = {}
    for node in wanted:
        digest = found.get(node)
        if digest is None:
            raise IntegrityError(f"The stored tree is missing node {node}.")
        if len(digest) != HASH_SIZE:
            raise IntegrityError(f"The stored tree has a corrupt hash at node {node}.")
        stored[node] = bytes(digest)
    return [_fold([stored[node] for node in nodes]) for nodes in per_range]


def inclusion_proof(index: int, size: int, lookup: Lookup) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), nearest the leaf first.

    Calls ``lookup`` once, or not at all when the proof is empty (a tree of one leaf). UsageError for an
    index outside the tree; IntegrityError if the store lacks a node it should have.
    """
    _check_count(size, "A tree size", 1)
    _check_count(index, "A leaf index", 0)
    if index >= size:
        raise UsageError(f"There is no leaf {index} in a tree of {size} leaves.")
    return _hashes_of(_inclusion_ranges(index, size), lookup)


def consistency_proof(old_size: int, new_size: int, lookup: Lookup) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); needs 0 < old_size <= new_size.

    Calls ``lookup`` once, or not at all when the proof is empty (equal sizes).
    """
    _check_count(old_size, "The old tree size", 1)
    _check_count(new_size, "The new tree size", 1)
    if old_size > new_size:
        raise UsageError(f"A tree of {new_size} leaves cannot extend one of {old_size}.")
    return _hashes_of(_consistency_ranges(old_size, new_size), lookup)


def root_at(size: int, lookup: Lookup) -> bytes:
    """MTH(D[0:size]) from stored perfect subtrees: one ``lookup`` call, none for size 0 (EMPTY_ROOT)."""
    _check_count(size, "A tree size", 0)
    if size == 0:
        return EMPTY_ROOT
    return _hashes_of([(0, size)], lookup)[0]


# Verifying proofs ------------------------------------------------------------------------------------


def _check_proof(proof: Sequence[bytes]) -> None:
    # A proof comes from the other side; a malformed element means it does not verify.
    for i, element in enumerate(proof):
        if not isinstance(element, bytes | bytearray) or len(element) != HASH_SIZE:
            raise IntegrityError(f"Proof element {i} is not a {HASH_SIZE}-byte hash.")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: check that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Returns nothing on success; raises IntegrityError if the proof does not verify, UsageError for
    arguments that cannot describe a tree (index outside it, hashes of the wrong length).
    """
    _check_hash(leaf, "The leaf hash")
    _check_hash(root, "The root hash")
    _check_count(size, "A tree size", 1)
    _check_count(index, "A leaf index", 0)
    if index >= size:
        raise UsageError(f"There is no leaf {index} in a tree of {size} leaves.")
    _check_proof(proof)
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            raise IntegrityError("The inclusion proof is longer than the tree is tall.")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node has no right sibling (the tree's ragged right edge).
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("The inclusion proof is too short for the tree.")
    if not hmac.compare_digest(r, root):
        raise IntegrityError(f"The inclusion proof for leaf {index} does not lead to the root of tree size {size}.")


def verify_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """RFC 9162 §2.1.4.2: check that the tree ``new_root`` of ``new_size`` extends ``old_root`` of ``old_size``.

    Needs 0 < old_size <= new_size (UsageError otherwise). For equal sizes the proof must be empty and
    the roots equal. Returns nothing on success; raises IntegrityError if the proof does not verify.
    """
    _check_hash(old_root, "The old root hash")
    _check_hash(new_root, "The new root hash")
    _check_count(old_size, "The old tree size", 1)
    _check_count(new_size, "The new tree size", 1)
    if old_size > new_size:
        raise UsageError(f"A tree of {new_size} leaves cannot extend one of {old_size}.")
    _check_proof(proof)
    if old_size == new_size:
        if proof:
            raise IntegrityError("A consistency proof between equal tree sizes must be empty.")
        if not hmac.compare_digest(old_root, new_root):
            raise IntegrityError(f"Two different roots for tree size {old_size}: the log has forked.")
        return
    if not proof:
        raise IntegrityError("The consistency proof is empty.")
    path = list(proof)
    # PROOF omits the old root when the old tree is a perfect subtree of the new one.
    if not old_size & (old_size - 1):
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise IntegrityError("The consistency proof is longer than the tree is tall.")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("The consistency proof is too short for the trees.")
    if not (hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)):
        raise IntegrityError(f"The consistency proof from tree size {old_size} to {new_size} does not verify.")
