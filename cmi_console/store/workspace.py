"""The workspace directory: configuration, database location, keys, witness.

$CMI_HOME/workspace.json   origin, id, optional database URL (never a password)
$CMI_HOME/cmi.db           the SQLite database (default backend)
$CMI_HOME/artifacts/       content-addressed store (or $CMI_ARTIFACT_ROOT)
$CMI_HOME/witness/         the latest signed checkpoints, outside the database
$CMI_HOME/keys/            log.key (0600), log.vkey, <principal>.key (0600), .pub
"""

from __future__ import annotations

import functools
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmi_console.core import names
from cmi_console.core.errors import BadInput, Denied
from cmi_console.core.small_files import kind_of, open_if_regular, read_document
from cmi_console.store.artifacts import ArtifactStore
from cmi_console.store.witness import Witness

if TYPE_CHECKING:  # cryptography loads where a key is used, not on every start
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CONFIG_FILE = "workspace.json"


def default_home() -> Path:
    env = os.environ.get("CMI_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cmi"


def write_private(path: Path, data: bytes) -> None:
    """Create a secret file with mode 0600 from the start (no window at 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read_private(path: Path) -> bytes:
    """A secret file's bytes, refused (exit 3) if others may read it, as ssh
    refuses such a key: a key others can read is a key others may use.
    Opened with open_if_regular: a key file that is a FIFO had blocked every
    command that signs. A missing file raises FileNotFoundError (the caller
    says whose key is missing)."""
    fd = open_if_regular(path)
    if fd is None:
        raise BadInput(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as fh:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise Denied(
                f"{path}: private key is open to others (mode {mode:04o}); "
                f"`chmod 600` it, and treat it as leaked if anyone may have read it"
            )
        return fh.read()


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` whole or not at all: a new file renamed over it.

    Only a regular file (or nothing) is replaced that way. Something else at
    the path (a device such as /dev/stdout or /dev/null, a pipe) is written
    to as it stands: renamed over, it became a regular file in the device's
    place (as root, `--out /dev/null` had replaced /dev/null itself). A
    symbolic link is followed, so the link stays and its target is replaced."""
    try:
        is_file = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        is_file = True  # nothing there yet (or a dangling link): create it
    if not is_file:
        with open(path, "wb") as fh:
            fh.write(data)
        return
    path = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# the keys cmi reads from workspace.json, and whether one must be there
_CONFIG_TEXT = {"origin": True, "workspace_id": False, "database_url": False, "witness_dir": False}


def _config_problem(config: Any) -> str | None:
    if not isinstance(config, dict):
        return "the workspace configuration must be a JSON object"
    for key, required in _CONFIG_TEXT.items():
        if key not in config:
            if required:
                return f"{key}: missing"
        elif not isinstance(config[key], str) or not config[key]:
            return f"{key}: must be a non-empty string"
    witness = config.get("witness_dir")
    if witness is not None and not Path(witness).is_absolute():
        # found from each command's working directory: every CI checkout and
        # console had a witness of its own, and none held the log's size
        return f"witness_dir: '{witness}' is not an absolute path"
    return None


@dataclass
class Workspace:
    home: Path
    db_override: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # CMI_ARTIFACT_ROOT as last read ("" when unset) and its store: a
    # registration asks for the store three times
    _store: tuple[str, ArtifactStore] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, home: Path, db: str | None = None) -> Workspace:
        cfg_path = home / CONFIG_FILE
        if kind_of(cfg_path, "--home") != "file":
            raise BadInput(f"{home}: no cmi workspace here; run `cmi init --home {home}`")
        # read without blocking: a FIFO here had held every command
        text = read_document(cfg_path)
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"{cfg_path}: unreadable workspace configuration ({exc})") from None
        problem = _config_problem(config)
        if problem:  # a hand-edited file: its keys were read as they came (internal errors)
            raise BadInput(f"{cfg_path}: {problem}")
        return cls(home=home, db_override=db, config=config)

    @property
    def database_url(self) -> str:
        return (
            self.db_override
            or os.environ.get("CMI_DATABASE_URL")
            or self.config.get("database_url")
            or f"sqlite:///{self.home / 'cmi.db'}"
        )

    @property
    def origin(self) -> str:
        return str(self.config["origin"])

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def witness_dir(self) -> Path:
        return Path(self.config.get("witness_dir") or self.home / "witness")

    @property
    def artifacts(self) -> ArtifactStore:
        root = os.environ.get("CMI_ARTIFACT_ROOT", "")
        if self._store is not None and self._store[0] == root:
            return self._store[1]
        if not root:
            store = ArtifactStore(self.home / "artifacts")
        elif not Path(root).is_absolute():  # each working directory would name another store
            raise BadInput(f"CMI_ARTIFACT_ROOT: '{root}' is not an absolute path")
        elif kind_of(Path(root), "CMI_ARTIFACT_ROOT") not in ("directory", "missing"):
            raise BadInput(f"CMI_ARTIFACT_ROOT: {root}: not a directory")
        else:
            store = ArtifactStore(Path(root))
        self._store = (root, store)
        return store

    def principal_key_path(self, name: str) -> Path:
        return self.keys_dir / f"{names.principal(name)}.key"

    def log_key(self) -> Ed25519PrivateKey:
        from cmi_console.core import keys

        path = self.keys_dir / "log.key"
        try:
            pem = read_private(path)
        except OSError:
            raise BadInput(f"{path}: the workspace log key is missing") from None
        return keys.load_private(pem, None, str(path))

    def log_public(self) -> bytes:
        return self.log_verifier_key()[1]

    def log_verifier_key(self) -> tuple[str, bytes]:
        """keys/log.vkey: its text and the public key it gives, checked against
        the log origin; read once (an export carries the very text checked)."""
        from cmi_console.core import checkpoint

        path = self.keys_dir / "log.vkey"
        if not os.path.lexists(path):
            raise BadInput(f"{path}: the workspace log verifier key is missing")
        # read without blocking: a FIFO here had held `cmi audit verify`
        text = read_document(path)
        name, public = checkpoint.parse_verifier_key(text)
        if name != self.origin:
            raise BadInput(f"{path}: key name '{name}' is not the log origin '{self.origin}'")
        return text, public

    @functools.cached_property
    def witness(self) -> Witness:
        return Witness(self.witness_dir)
