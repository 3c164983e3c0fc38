"""RFC 6962 Merkle tree hashing with RFC 9162 inclusion and consistency proofs.

Leaves are given as leaf hashes (SHA-256(0x00 || entry)), because the log
stores and chains those; the tree never needs the entry bytes again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
# leaves CompactRange.extend hashes as one block (a power of two)
EXTEND_BLOCK = 1 << 12


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right border of a growing tree: O(log n) state, O(1) amortized append.

    `peaks` holds the roots of the perfect subtrees that make up [0, size), the
    largest first. Its root equals `root(all leaves)`.
    """

    __slots__ = ("size", "peaks")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != bin(size).count("1"):
            raise ValueError("compact range does not match its size")
        self.size = size
        self.peaks = list(peaks)

    def append(self, h: bytes) -> None:
        peaks = self.peaks
        peaks.append(h)
        self.size += 1
        # each trailing 1-bit that the increment clears is a merge of two peaks
        n = self.size
        while not n & 1:
            right = peaks.pop()
            peaks[-1] = node_hash(peaks[-1], right)
            n >>= 1

    def extend(self, hashes: Sequence[bytes]) -> None:
        """Append many leaves. From an aligned size on, whole blocks are hashed
        a level at a time (`levels`), about half the cost of leaf by leaf."""
        i, n = 0, len(hashes)
        while i < n:
            if self.size & (EXTEND_BLOCK - 1):
                self.append(hashes[i])
                i += 1
                continue
            block = hashes[i : i + EXTEND_BLOCK]
            self.append_range(range_at(levels(block), len(block)))
            i += len(block)

    def append_range(self, other: CompactRange) -> None:
        """Append the leaves `other` was built from, given only its peaks.

        `other` must have been started at this range's size, and that size must
        be a multiple of a power of two no smaller than other.size (e.g. both
        cut at multiples of one chunk size): then each of other's peaks is a
        perfect subtree aligned in the whole tree, so the result is the range
        of all the leaves, without rehashing them. This is how `audit verify`
        joins chunks hashed by separate processes.
        """
        levels = [b for b in range(other.size.bit_length() - 1, -1, -1) if other.size >> b & 1]
        if levels and self.size & ((1 << levels[0]) - 1):
            raise ValueError(f"a range of {other.size} is not aligned at {self.size}")
        peaks = self.peaks
        for level, h in zip(levels, other.peaks, strict=True):
            peaks.append(h)
            self.size += 1 << level
            n = self.size >> level
            while not n & 1:
                right = peaks.pop()
                peaks[-1] = node_hash(peaks[-1], right)
                n >>= 1

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        acc = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.peaks)


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every complete subtree over `leaves`, a level at a time: level 0 is the
    leaves, level k the roots of their aligned runs of 2**k leaves. Hashing a
    whole level in one comprehension costs about half of appending leaf by leaf."""
    out = [list(leaves)]
    sha256 = hashlib.sha256
    while len(out[-1]) > 1:
        below = out[-1]
        # an odd last node has no partner yet: it waits, unpaired, at its level
        pairs = zip(below[::2], below[1::2], strict=False)
        out.append([sha256(b"\x01" + a + b).digest() for a, b in pairs])
    return out


def range_at(tree: list[list[bytes]], size: int) -> CompactRange:
    """The compact range of the first `size` leaves of `levels(...)`."""
    peaks, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            peaks.append(tree[level][start >> level])
            start += 1 << level
    return CompactRange(size, peaks)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    cr = CompactRange()
    cr.extend(leaves)
    return cr.root()


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) from RFC 6962 section 2.1.1, over leaf hashes."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of size {len(leaves)}")
    proof: list[bytes] = []
    lo, hi = 0, len(leaves)
    # walk down; collect siblings, then reverse to leaf-to-root order
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            proof.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo : lo + k]))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) from RFC 6962 section 2.1.2, over leaf hashes."""
    n = len(leaves)
    if not 0 < first <= n:
        raise ValueError(f"no consistency proof from size {first} to size {n}")
    if first == n:
        return []
    return _subproof(first, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], complete) + [root(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [root(leaves[:k])]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2; raises ValueError on a malformed proof."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    try:
        return root_from_inclusion(index, size, leaf, proof) == expected_root
    except ValueError:
        return False


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


class Tree:
    """Every level of the tree, for many inclusion proofs at O(log n) each.

    Pairing each level left to right and carrying a lone last node up
    unchanged builds exactly the RFC 6962 tree (its left subtrees are the
    largest powers of two). Memory: about 2n hashes.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        level = self.levels[0]
        while len(level) > 1:
            up = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                up.append(level[-1])
            self.levels.append(up)
            level = up

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise ValueError(f"leaf {index} is not in a tree of size {self.size}")
        proof = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):  # a lone last node has no sibling at this level
                proof.append(level[sibling])
            index >>= 1
        return proof
