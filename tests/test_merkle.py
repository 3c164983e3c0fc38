"""RFC 6962 / RFC 9162: published vectors, and a brute-force reference written
straight from the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmi_console.core import merkle

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {
    0: [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    5: [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CONSISTENCY = {
    (1, 8): INCLUSION[0],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
HASHES = [merkle.leaf_hash(d) for d in LEAVES]


# --- the reference: RFC 6962 section 2.1, verbatim, on raw leaves -------------


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


# --- published vectors ---------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_rfc6962_vectors(size: int) -> None:
    assert merkle.root(HASHES[:size]).hex() == ROOTS[size - 1]


def test_empty_tree_is_hash_of_nothing() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("index", sorted(INCLUSION))
def test_inclusion_matches_published_paths(index: int) -> None:
    proof = merkle.inclusion_proof(index, HASHES)
    assert [p.hex() for p in proof] == INCLUSION[index]
    assert merkle.verify_inclusion(index, 8, HASHES[index], proof, bytes.fromhex(ROOTS[7]))


@pytest.mark.parametrize("sizes", sorted(CONSISTENCY))
def test_consistency_matches_published_proofs(sizes: tuple[int, int]) -> None:
    m, n = sizes
    proof = merkle.consistency_proof(m, HASHES[:n])
    assert [p.hex() for p in proof] == CONSISTENCY[sizes]
    assert merkle.verify_consistency(
        m, n, bytes.fromhex(ROOTS[m - 1]), bytes.fromhex(ROOTS[n - 1]), proof
    )


# --- against the brute-force reference -------------------------------------------

leaf_lists = st.lists(st.binary(max_size=6), min_size=1, max_size=40)


@given(leaf_lists)
def test_root_and_compact_range_equal_reference(data: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(x) for x in data]
    assert merkle.root(hashes) == ref_mth(data)
    rng = merkle.CompactRange()
    for i, h in enumerate(hashes, start=1):
        rng.append(h)
        assert rng.root() == ref_mth(data[:i])
    # resuming from stored peaks gives the same tree
    assert merkle.CompactRange(rng.size, rng.peaks).root() == ref_mth(data)


@given(st.lists(st.binary(max_size=4), min_size=1, max_size=70), st.sampled_from([1, 2, 4, 8]))
def test_ranges_hashed_in_chunks_join_to_the_reference(data: list[bytes], chunk: int) -> None:
    # audit verify hashes aligned chunks in separate processes and joins them;
    # every prefix cut inside a chunk must give the root of that prefix
    hashes = [merkle.leaf_hash(x) for x in data]
    whole = merkle.CompactRange()
    for start in range(0, len(hashes), chunk):
        part = merkle.CompactRange()
        for i, h in enumerate(hashes[start : start + chunk], start=start + 1):
            part.append(h)
            cut = whole.copy()
            cut.append_range(part)
            assert (cut.size, cut.root()) == (i, ref_mth(data[:i]))
        whole.append_range(part)
    assert whole.root() == ref_mth(data)


@given(leaf_lists)
def test_levels_give_every_prefix_range(data: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(x) for x in data]
    tree = merkle.levels(hashes)
    for size in range(len(data) + 1):
        rng = merkle.range_at(tree, size)
        assert (rng.size, rng.root()) == (size, ref_mth(data[:size]))


@given(
    st.lists(st.binary(max_size=4), max_size=40),
    st.lists(st.integers(min_value=0, max_value=40), max_size=5),
)
def test_extend_in_blocks_equals_leaf_by_leaf(data: list[bytes], cuts: list[int]) -> None:
    # extend hashes aligned blocks a level at a time; wherever a call starts
    # and however many leaves it brings, the range is the reference's
    hashes = [merkle.leaf_hash(x) for x in data]
    for block in (4, merkle.EXTEND_BLOCK):  # small: blocks start past 0 too
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(merkle, "EXTEND_BLOCK", block)
            rng, done = merkle.CompactRange(), 0
            for cut in sorted(min(c, len(hashes)) for c in cuts) + [len(hashes)]:
                rng.extend(hashes[done:cut])
                done = cut
                assert (rng.size, rng.root()) == (done, ref_mth(data[:done]))


def test_an_unaligned_range_is_refused() -> None:
    rng, part = merkle.CompactRange(), merkle.CompactRange()
    rng.append(merkle.leaf_hash(b"a"))
    part.extend([merkle.leaf_hash(b"b"), merkle.leaf_hash(b"c")])
    with pytest.raises(ValueError, match="not aligned"):
        rng.append_range(part)


@given(leaf_lists, st.data())
def test_inclusion_proofs_equal_reference_and_verify(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [merkle.leaf_hash(x) for x in data]
    index = draw.draw(st.integers(0, len(data) - 1))
    proof = merkle.inclusion_proof(index, hashes)
    assert proof == ref_path(index, data)
    root = ref_mth(data)
    assert merkle.verify_inclusion(index, len(data), hashes[index], proof, root)
    # a proof never verifies another leaf or a flipped sibling
    other = merkle.leaf_hash(data[index] + b"x")
    assert not merkle.verify_inclusion(index, len(data), other, proof, root)
    if proof:
        bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
        assert not merkle.verify_inclusion(index, len(data), hashes[index], bad, root)


@given(leaf_lists, st.data())
def test_consistency_proofs_equal_reference_and_verify(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [merkle.leaf_hash(x) for x in data]
    m = draw.draw(st.integers(1, len(data)))
    proof = merkle.consistency_proof(m, hashes)
    assert proof == ([] if m == len(data) else ref_subproof(m, data, True))
    old, new = ref_mth(data[:m]), ref_mth(data)
    assert merkle.verify_consistency(m, len(data), old, new, proof)
    if m < len(data):
        forged = ref_mth([b"forged"] + data[1:m])
        assert not merkle.verify_consistency(m, len(data), forged, new, proof)


def test_malformed_proofs_are_refused() -> None:
    assert not merkle.verify_inclusion(8, 8, HASHES[0], [], bytes.fromhex(ROOTS[7]))
    assert not merkle.verify_inclusion(0, 8, HASHES[0], [HASHES[1]] * 9, bytes.fromhex(ROOTS[7]))
    assert not merkle.verify_consistency(0, 8, b"", bytes.fromhex(ROOTS[7]), [])
    assert not merkle.verify_consistency(8, 4, bytes.fromhex(ROOTS[7]), bytes.fromhex(ROOTS[3]), [])


@given(st.integers(min_value=1, max_value=70), st.data())
def test_tree_levels_give_the_reference_root_and_proofs(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(n)]
    tree = merkle.Tree(leaves)
    assert tree.root() == merkle.root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    assert tree.inclusion_proof(index) == merkle.inclusion_proof(index, leaves)
