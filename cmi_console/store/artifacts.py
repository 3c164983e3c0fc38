"""Content-addressed artifact store: files are named by their SHA-256.

Names are only ever 64 lowercase hex digits, so no caller-supplied string can
reach outside the store. Every read re-hashes the bytes (DESIGN.md invariant 7).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from cmi_console.core import names
from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.core.small_files import kind_of, open_if_regular, open_regular

_CHUNK = 1 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_NAMES = itertools.count()  # temporary names: unique in a process without random draws


def _read(fd: int, source: Path) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except OSError as exc:  # a file that cannot be read through (EIO, a directory's EISDIR)
        raise BadInput(f"{source}: cannot read ({exc.strerror})") from None


def check_digest(digest: str) -> str:
    return names.sha256(digest, "artifact")


def require_writable(path: Path, where: str = "") -> None:
    """BadInput unless a file can be written at `path`. Checked before the
    work whose result goes there: a bad --out, found after a validation run
    or a checkpoint had been recorded, left them written."""
    prefix = f"{where}: " if where else ""
    kind = kind_of(path, where)
    if kind == "directory":
        raise BadInput(f"{prefix}{path}: is a directory")
    parent = path.parent
    if kind_of(parent, where) != "directory":
        raise BadInput(f"{prefix}{path}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (kind != "missing" and not os.access(path, os.W_OK)):
        raise BadInput(f"{prefix}{path}: not writable")


class Stored(NamedTuple):
    digest: str
    size: int
    created: bool  # this call put the file there (it was missing, or altered)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest

    def put_file(self, source: Path | bytes, *, sync: bool = True) -> Stored:
        """Copy a file (or bytes already read) in, hashing as it streams.

        sync=False leaves the fsync to a later `sync()` (a batch makes all its
        files durable at once, before the commit that names them). Plain file
        descriptors, and directories made only when missing: every
        registration pays each system call here (pathlib and tempfile made
        23 for a small file; this makes 10)."""
        if isinstance(source, bytes):
            return self._put([source], sync)
        src = open_regular(source)  # a FIFO given as an artifact must not hang it
        try:
            return self._put(iter(lambda: _read(src, source), b""), sync)
        finally:
            os.close(src)

    def _put(self, chunks: Iterable[bytes], sync: bool) -> Stored:
        out, tmp = self._temporary()
        try:
            h = hashlib.sha256()
            size = 0
            try:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:  # a write may take less than it was given
                        view = view[os.write(out, view) :]
                os.fchmod(out, 0o444)  # explicit: the umask must not narrow a team's store
                if sync:
                    os.fsync(out)
            except OSError as exc:  # the store's disk is full, a quota, a size limit
                raise self._unwritable(exc) from None
            finally:
                os.close(out)
            digest = h.hexdigest()
            final = self.path_for(digest)
            created = not (final.exists() and self.is_intact(digest))
            if not created:
                os.unlink(tmp)
            else:
                try:
                    try:
                        os.replace(tmp, final)
                    except FileNotFoundError:
                        final.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(tmp, final)
                except OSError as exc:
                    raise self._unwritable(exc) from None
            tmp = ""
        finally:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return Stored(digest, size, created)

    def _unwritable(self, exc: OSError) -> BadInput:
        return BadInput(f"artifact store {self.root}: cannot write ({exc.strerror})")

    def has(self, digest: str) -> bool:
        """Whether the file is there (not re-hashed: for the hot path)."""
        return os.path.exists(self.path_for(digest))

    def discard(self, digest: str) -> None:
        """Remove a stored file that no row names (a failed write's)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_for(digest))

    def _temporary(self) -> tuple[int, str]:
        """A new file in the store's tmp/ directory: (descriptor, path)."""
        tmp_dir = self.root / "tmp"
        while True:
            name = f"{tmp_dir}/.{os.getpid()}.{threading.get_ident()}.{next(_NAMES)}"
            try:
                return os.open(name, _NEW_FILE, 0o600), name
            except FileNotFoundError:
                try:
                    tmp_dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:  # a store where nothing can be made
                    raise BadInput(f"artifact store {self.root}: {exc.strerror}") from None
            except FileExistsError:  # left by a process that had our pid before
                continue
            except OSError as exc:  # read-only, not a directory, no space...
                raise BadInput(f"artifact store {self.root}: {exc.strerror}") from None

    def sync(self, digests: list[str]) -> None:
        """Make these stored files (and their directory entries) durable.

        One syncfs() of the store's file system flushes a whole batch for about
        the cost of one fsync; without it (not Linux), fsync each file."""
        if not digests:
            return
        syncfs = _syncfs()
        if syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
        for digest in digests:
            try:
                fd = os.open(self.path_for(digest), os.O_RDONLY)
            except FileNotFoundError:  # a failed write's clean-up took it: it is stored again
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, digest: str) -> bytes:
        """The artifact's bytes, after checking they still hash to `digest`."""
        fd, fault = self._open_stored(digest)
        if fd is None:
            # every caller reads an artifact the registry names: its loss is
            # an integrity violation, as a changed file is (exit 4, not 2)
            what = "missing from" if fault == "missing" else "not a regular file in"
            raise IntegrityError(f"artifact {digest}: {what} the store ({self.root})")
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"artifact {digest}: content hashes to {actual} (file changed in the store)"
            )
        return data

    def is_intact(self, digest: str) -> bool:
        return self.fault(digest) is None

    def fault(self, digest: str) -> str | None:
        """None if the artifact is there and hashes to `digest`; else
        'missing' or 'altered'."""
        fd, fault = self._open_stored(digest)
        if fd is None:
            return fault
        h = hashlib.sha256()
        with os.fdopen(fd, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        return None if h.hexdigest() == digest else "altered"

    def _open_stored(self, digest: str) -> tuple[int | None, str | None]:
        """(a descriptor on the stored file, None), or (None, "missing" or
        "altered"). Opened with open_if_regular: a FIFO put in its place after
        a check of the name had held the read (and `cmi audit verify
        --artifacts`) for good."""
        try:
            fd = open_if_regular(self.path_for(digest))
        except (FileNotFoundError, NotADirectoryError):
            return None, "missing"
        return (None, "altered") if fd is None else (fd, None)


def _syncfs() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
