"""Ed25519 checks of `audit verify`, run on a thread pool.

libsodium releases the GIL while it checks, and the verifier's own thread
mostly waits for its worker processes, so the checks (a third of the CPU of
a log with 5% signed entries) overlap the rest. A pass that keeps the GIL
busy itself (`verify-bundle`) checks inline: there the hand-overs cost more.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from cmi_console.core import keys


class SignatureChecks:
    """Collects (seq, public key, signature, message) and checks them in
    batches on other threads; `failures()` waits for all of them."""

    BATCH = 256  # big enough that handing a batch over costs nothing

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
        self.pending: list[tuple[int, bytes, bytes, bytes]] = []
        self.futures: list[Future[list[int]]] = []

    def check(self, seq: int, public: bytes, signature: bytes, message: bytes) -> None:
        self.pending.append((seq, public, signature, message))
        if len(self.pending) >= self.BATCH:
            self._submit()

    def _submit(self) -> None:
        if self.pending:
            self.futures.append(self.pool.submit(_bad, self.pending))
            self.pending = []

    def failures(self) -> list[int]:
        """The seqs whose signature does not verify, in order, once all are checked."""
        self._submit()
        try:
            return sorted(seq for f in self.futures for seq in f.result())
        finally:
            self.pool.shutdown()


def _bad(batch: list[tuple[int, bytes, bytes, bytes]]) -> list[int]:
    return [seq for seq, public, sig, msg in batch if not keys.verify(public, sig, msg)]
