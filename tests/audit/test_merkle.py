"""RFC 9162 Merkle trees: known answers, an independent reference, and proofs that must (not) verify."""

from __future__ import annotations

import functools
import hashlib
import timeit
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    Node,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_nodes,
    root_at,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from civicshare.errors import IntegrityError, UsageError

# Known answers ---------------------------------------------------------------------------------------
# From github.com/transparency-dev/merkle, proof/verify_test.go (commit 02194e9afb6c1d95b5381350007963aa70fff472),
# the data set Certificate Transparency and Trillian have used since RFC 6962 (same hashing as RFC 9162).

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
# (index, size, proof); the Go file numbers leaves from 1, these are 0-based indices.
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SHA256_EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


# An independent reference: RFC 9162 §2.1 written out literally, recursion and all --------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _split(n)
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _split(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# A tree stored the way the audit log stores it -------------------------------------------------------

MAX_SIZE = 2000


class Store:
    """A dict of every perfect-subtree hash, filled from Frontier.append, with a counting lookup."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self.nodes: dict[Node, bytes] = {}
        self.roots = [EMPTY_ROOT]
        self.frontiers = [b""]
        frontier = Frontier()
        for i, entry in enumerate(self.entries):
            leaf = leaf_hash(entry)
            self.nodes[(0, i)] = leaf
            for level, index, digest in frontier.append(leaf):
                assert level >= 1 and (level, index) not in self.nodes
                self.nodes[(level, index)] = digest
            self.roots.append(frontier.root())
            self.frontiers.append(frontier.to_bytes())
        self.calls: list[set[Node]] = []

    def lookup(self, wanted: set[Node]) -> Mapping[Node, bytes]:
        self.calls.append(set(wanted))
        return {node: self.nodes[node] for node in wanted if node in self.nodes}

    def asked_within(self, size: int) -> bool:
        """Whether every node asked for so far is complete in the tree of ``size`` leaves."""
        return all((index + 1) << level <= size for call in self.calls for level, index in call)


@functools.cache
def big_store() -> Store:
    return Store([b"entry %d" % i for i in range(MAX_SIZE)])


def known_store() -> Store:
    return Store(LEAVES)


def flip(proof: Sequence[bytes], i: int, bit: int = 0) -> list[bytes]:
    changed = list(proof)
    changed[i] = bytes([changed[i][0] ^ (1 << bit)]) + changed[i][1:]
    return changed


# Known-answer tests ----------------------------------------------------------------------------------


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == SHA256_EMPTY == root_from_leaves([])
    assert leaf_hash(b"") == ROOTS[0]
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha(b"\x01" + b"L" * 32 + b"R" * 32)


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    store = known_store()
    leaves = [leaf_hash(x) for x in LEAVES[:size]]
    assert root_from_leaves(leaves) == ROOTS[size - 1]
    assert store.roots[size] == ROOTS[size - 1]
    assert root_at(size, store.lookup) == ROOTS[size - 1]
    assert ref_mth(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert inclusion_proof(index, size, known_store().lookup) == expected
    assert ref_path(index, LEAVES[:size]) == expected
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, expected, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_known_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert consistency_proof(old, new, known_store().lookup) == expected
    assert ref_proof(old, LEAVES[:new]) == expected
    verify_consistency(old, new, expected, ROOTS[old - 1], ROOTS[new - 1])


def test_every_small_proof_matches_the_reference() -> None:
    store = big_store()
    for size in range(1, 41):
        entries = store.entries[:size]
        assert root_at(size, store.lookup) == ref_mth(entries)
        for index in range(size):
            assert inclusion_proof(index, size, store.lookup) == ref_path(index, entries)
        for old in range(1, size + 1):
            assert consistency_proof(old, size, store.lookup) == ref_proof(old, entries)


def test_frontier_nodes_are_the_reference_subtrees() -> None:
    store = Store([b"leaf %d" % i for i in range(100)])
    assert len(store.nodes) == 100 + 100 - (100).bit_count()
    for (level, index), digest in store.nodes.items():
        assert digest == ref_mth(store.entries[index << level : (index + 1) << level])


def test_perfect_nodes() -> None:
    assert perfect_nodes(0, 1) == [(0, 0)]
    assert perfect_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_nodes(8, 13) == [(2, 2), (0, 12)]
    assert perfect_nodes(6, 8) == [(1, 3)]
    assert perfect_nodes(1024, 2000) == [(9, 2), (8, 6), (7, 14), (6, 30), (4, 124)]
    for start, end in [(0, 0), (3, 3), (4, 13), (1, 3), (-1, 2), (5, 4)]:
        with pytest.raises(UsageError):
            perfect_nodes(start, end)


# Properties over random trees ------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(sizes)
    return draw(st.integers(min_value=1, max_value=new)), new


@settings(max_examples=300, deadline=None)
@given(sizes)
def test_roots_agree(size: int) -> None:
    store = big_store()
    store.calls.clear()
    leaves = [store.nodes[(0, i)] for i in range(size)]
    frontier = Frontier.from_bytes(size, store.frontiers[size])
    assert frontier.root() == store.roots[size] == root_from_leaves(leaves) == root_at(size, store.lookup)
    assert len(store.calls) == 1 and store.asked_within(size)


@settings(max_examples=300, deadline=None)
@given(size_and_index())
def test_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    size, index = case
    store = big_store()
    store.calls.clear()
    proof = inclusion_proof(index, size, store.lookup)
    assert len(store.calls) == (1 if size > 1 else 0)
    assert store.asked_within(size)
    leaf, root = store.nodes[(0, index)], store.roots[size]
    verify_inclusion(leaf, index, size, proof, root)
    assert not size & (size - 1) or len(proof) <= size.bit_length()


@settings(max_examples=60, deadline=None)
@given(size_and_index())
def test_inclusion_proofs_match_the_reference(case: tuple[int, int]) -> None:
    size, index = case
    store = big_store()
    assert inclusion_proof(index, size, store.lookup) == ref_path(index, store.entries[:size])


@settings(max_examples=300, deadline=None)
@given(size_and_index(), st.data())
def test_tampered_inclusion_proofs_fail(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    store = big_store()
    proof = inclusion_proof(index, size, store.lookup)
    leaf, root = store.nodes[(0, index)], store.roots[size]
    other = leaf_hash(b"not an entry")

    bad_cases: list[tuple[bytes, int, list[bytes], bytes]] = [
        (other, index, proof, root),  # a changed leaf
        (leaf, index, proof, other),  # a wrong root
        (leaf, index, proof + [other], root),  # extended at the end
        (leaf, index, [other, *proof], root),  # extended at the front
    ]
    if size > 1:
        wrong = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
        bad_cases.append((leaf, wrong, proof, root))
        bad_cases.append((store.nodes[(0, wrong)], index, proof, root))
    if proof:
        bad_cases.append((leaf, index, proof[:-1], root))  # truncated
        bad_cases.append((leaf, index, proof[1:], root))  # missing its first step
        bit = data.draw(st.integers(min_value=0, max_value=7))
        bad_cases.extend((leaf, index, flip(proof, i, bit), root) for i in range(len(proof)))
    for bad_leaf, bad_index, bad_proof, bad_root in bad_cases:
        with pytest.raises(IntegrityError):
            verify_inclusion(bad_leaf, bad_index, size, bad_proof, bad_root)


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_consistency_proofs_verify(case: tuple[int, int]) -> None:
    old, new = case
    store = big_store()
    store.calls.clear()
    proof = consistency_proof(old, new, store.lookup)
    assert len(store.calls) == (1 if old < new else 0)
    assert store.asked_within(new)
    verify_consistency(old, new, proof, store.roots[old], store.roots[new])


@settings(max_examples=60, deadline=None)
@given(two_sizes())
def test_consistency_proofs_match_the_reference(case: tuple[int, int]) -> None:
    old, new = case
    store = big_store()
    assert consistency_proof(old, new, store.lookup) == ref_proof(old, store.entries[:new])


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(min_value=0, max_value=7))
def test_tampered_consistency_proofs_fail(case: tuple[int, int], bit: int) -> None:
    old, new = case
    store = big_store()
    proof = consistency_proof(old, new, store.lookup)
    old_root, new_root = store.roots[old], store.roots[new]
    other = leaf_hash(b"not an entry")

    bad_cases: list[tuple[int, list[bytes], bytes, bytes]] = [
        (old, proof, other, new_root),
        (old, proof, old_root, other),
        (old, proof + [other], old_root, new_root),
        (old, [other, *proof], old_root, new_root),
    ]
    if old < new:
        bad_cases.append((old, proof, new_root, old_root))  # swapped roots
        bad_cases.append((old, [], old_root, new_root))
        bad_cases.append((old, proof[:-1], old_root, new_root))
        bad_cases.append((old, proof[1:], old_root, new_root))
        bad_cases.extend((old, flip(proof, i, bit), old_root, new_root) for i in range(len(proof)))
        bad_cases.extend((size, proof, old_root, new_root) for size in (old - 1, old + 1) if 1 <= size <= new)
    for bad_old, bad_proof, bad_old_root, bad_new_root in bad_cases:
        with pytest.raises(IntegrityError):
            verify_consistency(bad_old, new, bad_proof, bad_old_root, bad_new_root)


@settings(max_examples=100, deadline=None)
@given(sizes, st.binary(min_size=32, max_size=32))
def test_frontier_round_trip_and_append(size: int, leaf: bytes) -> None:
    store = big_store()
    frontier = Frontier.from_bytes(size, store.frontiers[size])
    assert frontier.size == size and frontier.to_bytes() == store.frontiers[size]
    completed = frontier.append(leaf)
    # The nodes a new leaf completes are exactly the trailing one bits of the old size.
    assert [(level, index) for level, index, _ in completed] == [
        (level, size >> level) for level in range(1, (size ^ (size + 1)).bit_length())
    ]
    leaves = [store.nodes[(0, i)] for i in range(size)] + [leaf]
    assert frontier.root() == root_from_leaves(leaves)


# Storage faults and arguments ------------------------------------------------------------------------


def test_a_missing_node_is_an_integrity_error() -> None:
    store = known_store()
    del store.nodes[(1, 2)]
    with pytest.raises(IntegrityError, match=r"missing node \(1, 2\)"):
        inclusion_proof(6, 8, store.lookup)
    with pytest.raises(IntegrityError, match="missing node"):
        consistency_proof(4, 7, store.lookup)
    with pytest.raises(IntegrityError, match="missing node"):
        root_at(7, store.lookup)


def test_a_corrupt_stored_hash_is_an_integrity_error() -> None:
    store = known_store()
    store.nodes[(0, 1)] = b"short"
    with pytest.raises(IntegrityError):
        inclusion_proof(0, 8, store.lookup)


def test_empty_proofs_need_no_lookup() -> None:
    store = known_store()
    assert inclusion_proof(0, 1, store.lookup) == []
    assert consistency_proof(5, 5, store.lookup) == []
    assert root_at(0, store.lookup) == EMPTY_ROOT
    assert store.calls == []


def test_bad_arguments_are_usage_errors() -> None:
    lookup = known_store().lookup
    root, leaf = ROOTS[7], leaf_hash(LEAVES[0])
    calls = [
        lambda: inclusion_proof(8, 8, lookup),
        lambda: inclusion_proof(-1, 8, lookup),
        lambda: inclusion_proof(0, 0, lookup),
        lambda: inclusion_proof(0, True, lookup),
        lambda: consistency_proof(0, 8, lookup),
        lambda: consistency_proof(5, 4, lookup),
        lambda: root_at(-1, lookup),
        lambda: verify_inclusion(leaf, 8, 8, [], root),
        lambda: verify_inclusion(leaf, -1, 8, [], root),
        lambda: verify_inclusion(leaf[:31], 0, 8, [], root),
        lambda: verify_inclusion(leaf, 0, 8, [], root + b"x"),
        lambda: verify_consistency(0, 8, [], root, root),
        lambda: verify_consistency(5, 4, [], root, root),
        lambda: Frontier.from_bytes(3, b"\x00" * 32),
        lambda: Frontier.from_bytes(-1, b""),
        lambda: Frontier(2, []),
        lambda: Frontier().append(b"short"),
        lambda: root_from_leaves([leaf, b"short"]),
    ]
    for call in calls:
        with pytest.raises(UsageError):
            call()


def test_malformed_proof_elements_do_not_verify() -> None:
    proof = [bytes.fromhex(h) for h in INCLUSION[1][2]]
    with pytest.raises(IntegrityError):
        verify_inclusion(leaf_hash(LEAVES[0]), 0, 8, [proof[0], proof[1][:31], proof[2]], ROOTS[7])
    with pytest.raises(IntegrityError):
        verify_consistency(1, 8, [*proof[:2], proof[2] + b"\x00"], ROOTS[0], ROOTS[7])


def test_equal_sizes_need_equal_roots_and_an_empty_proof() -> None:
    verify_consistency(3, 3, [], ROOTS[2], ROOTS[2])
    with pytest.raises(IntegrityError, match="forked"):
        verify_consistency(3, 3, [], ROOTS[2], ROOTS[3])
    with pytest.raises(IntegrityError):
        verify_consistency(3, 3, [ROOTS[2]], ROOTS[2], ROOTS[2])


def test_inclusion_proof_at_a_million_leaves_is_fast() -> None:
    size, index = 1_000_000, 123_457
    # Any 32-byte values will do for timing; record which nodes a proof asks for and serve those.
    asked: set[Node] = set()

    def recorder(wanted: set[Node]) -> Mapping[Node, bytes]:
        asked.update(wanted)
        return {node: hashlib.sha256(repr(node).encode()).digest() for node in wanted}

    inclusion_proof(index, size, recorder)
    nodes = {node: hashlib.sha256(repr(node).encode()).digest() for node in asked}
    per_call = min(timeit.repeat(lambda: inclusion_proof(index, size, lambda wanted: nodes),
                                 number=200, repeat=5)) / 200
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} µs per inclusion proof"
