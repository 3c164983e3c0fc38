"""The witness: the latest signed checkpoints, kept outside the database.

Two slots, overwritten in place, the older one each time: a crash that tears
one write leaves the other slot valid. In place (no rename) on purpose: on
ext4 a rename over an existing file forces a flush that costs as much as the
database commit itself. Every audited write lands here, so the slots stay
open between writes (opening a file cost more than the rest of the write);
a slot that was removed or replaced since is opened again.

Writers in other processes (every CI job and console on the workspace) take
an exclusive lock on `writers.lock` around choosing a slot and writing it:
two that chose the same slot at once had left it with the smaller size (the
witness moved back), or cut the longer note short with the other's length.
The lock is waited for LOCK_WAIT seconds at most: the write comes after the
commit, and a process that held the lock for good (stopped in a debugger, a
hostile `flock`) had hung every writer after its change was committed. A
write that gives up says so; the witness stays where it was, which is still
true (never ahead of the database), and the next write brings it up to date.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from pathlib import Path

from cmi_console.core.errors import BadInput
from cmi_console.core.small_files import read_regular

SLOTS = ("checkpoint.0", "checkpoint.1")
LEGACY = "latest.checkpoint"  # read, never written: the file before the slots
LOCK = "writers.lock"  # never read: only locked
MAX_NOTE = 64 * 1024  # a signed note is a few hundred bytes
LOCK_WAIT = 10.0  # seconds; a writer holds the lock for a few microseconds


class Witness:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: list[int | None] = [None] * (len(SLOTS) + 1)  # the slots, then the lock
        self._lock = threading.Lock()  # the console writes from worker threads
        weakref.finalize(self, _close, self._fds)

    @property
    def paths(self) -> list[Path]:
        return [self.directory / name for name in SLOTS]

    def read(self) -> list[str]:
        """The witnessed notes present (both slots, and a pre-slot file)."""
        return self.read_checked()[0]

    def read_checked(self) -> tuple[list[str], list[str]]:
        """The witnessed notes present, and what is wrong with each file there
        that could not be read as one. Read without blocking and at most
        MAX_NOTE bytes: a slot swapped for a FIFO (or a huge file) had held
        `cmi audit verify` for good, instead of being reported."""
        notes, problems = [], []
        for path in [*self.paths, self.directory / LEGACY]:
            if not os.path.lexists(path):
                continue
            try:
                data = read_regular(path, "witness", limit=MAX_NOTE)
            except BadInput as exc:
                problems.append(exc.message)
                continue
            if len(data) > MAX_NOTE:
                problems.append(f"witness: {path}: larger than {MAX_NOTE} bytes")
                continue
            notes.append(data.decode(errors="replace"))
        return notes, problems

    def prepare(self) -> None:
        """Open the lock (made, with its directory, when missing) and the slots
        there are, for writing, or say why they cannot be: called before a
        commit, so that a witness this process may not write refuses the
        write. Found after the commit, it had failed a command whose change
        was committed (an internal error, exit 70). A missing slot is made
        by the write, in the directory the lock was just made in."""
        with self._lock:
            for i in (len(SLOTS), *range(len(SLOTS))):
                try:
                    self._slot(i, create=i == len(SLOTS))
                except OSError as exc:
                    name = SLOTS[i] if i < len(SLOTS) else LOCK
                    raise BadInput(
                        f"witness {self.directory / name}: cannot write ({exc.strerror}); "
                        "nothing was written"
                    ) from None

    def write(self, note: str, size: int) -> str | None:
        """Keep the witness at the largest size seen; a slower writer never
        regresses it. None when done; why not, when the writers' lock was
        held by another for LOCK_WAIT seconds."""
        with self._lock:
            lock = self._slot(len(SLOTS), create=True)
            assert lock is not None
            if not _take(lock, LOCK_WAIT):
                return (
                    f"committed, not witnessed: {self.directory / LOCK} was held by another "
                    f"process for {LOCK_WAIT:g} s; the next write brings the witness up to date"
                )
            try:
                sizes = [_claimed(self._slot(i, create=False)) for i in range(len(SLOTS))]
                if max(sizes) >= size:
                    return None
                fd = self._slot(sizes.index(min(sizes)), create=True)
                data = note.encode()
                os.pwrite(fd, data, 0)  # type: ignore[arg-type]
                os.ftruncate(fd, len(data))  # type: ignore[arg-type]
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return None

    def _slot(self, i: int, *, create: bool) -> int | None:
        """Slot i's open descriptor (i == len(SLOTS): the lock file's); None
        when it does not exist and `create` is off."""
        fd = self._fds[i]
        if fd is not None and os.fstat(fd).st_nlink > 0:
            return fd
        if fd is not None:  # removed or replaced since it was opened
            os.close(fd)
            self._fds[i] = None
        path = self.directory / (SLOTS[i] if i < len(SLOTS) else LOCK)
        # the lock is only locked: read-only, so a writer who may not write
        # another's lock file (a shared witness directory) can still take it
        mode = os.O_RDWR if i < len(SLOTS) else os.O_RDONLY
        try:
            fd = os.open(path, mode | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if not create:
                return None
            # made only when missing, not checked with a system call each write
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, mode | os.O_CREAT, 0o644)
        self._fds[i] = fd
        return fd


def _take(fd: int, wait: float) -> bool:
    """Lock `fd` exclusively within `wait` seconds. Polled: a blocking flock
    cannot be bounded from a worker thread (an alarm signal reaches only the
    main thread), and the first try almost always succeeds."""
    deadline = time.monotonic() + wait
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _claimed(fd: int | None) -> int:
    """The tree size a slot claims; -1 when missing or unreadable."""
    if fd is None:
        return -1
    try:
        return int(os.pread(fd, 4096, 0).split(b"\n")[1])
    except (OSError, IndexError, ValueError):
        return -1


def _close(fds: list[int | None]) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)
