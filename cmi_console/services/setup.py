"""Creating a workspace: directories, keys, schema and the genesis entry."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmi_console.core import checkpoint, clock, keys, names
from cmi_console.core.errors import BadInput
from cmi_console.core.policy import read_toml
from cmi_console.core.small_files import kind_of
from cmi_console.services import identity, policies
from cmi_console.services.context import Context
from cmi_console.store import schema
from cmi_console.store.engine import has_password, make_engine
from cmi_console.store.workspace import CONFIG_FILE, Workspace, write_private


def init_workspace(
    home: Path,
    *,
    admin: str,
    db: str | None = None,
    passphrase: bytes | None = None,
    display_name: str = "",
    now: Callable[[], str] = clock.utc_now,
    workspace_id: str | None = None,
    keygen: Callable[[str], Ed25519PrivateKey] = lambda _name: keys.generate(),
    extra_config: dict[str, object] | None = None,
    policy: Path | None = None,
) -> Context:
    """Create a workspace; refuse (and change nothing) if one is already there."""
    names.principal(admin, "--admin")
    kind = _check_home(home)
    wid = workspace_id or uuid.uuid4().hex
    origin = f"cmi-console.local/{wid[:16]}"
    config = {"format": 1, "workspace_id": wid, "origin": origin, "created_at": now()}
    config.update(extra_config or {})
    if db and not has_password(db):  # a password is never written to disk
        config["database_url"] = db
    ws = Workspace(home=home, db_override=db, config=config)
    created_home = kind == "missing"
    _claim(home)
    engine = make_engine(ws.database_url)
    try:
        if schema.has_tables(engine):
            raise BadInput("database: already holds tables; use an empty database")
        ws.keys_dir.mkdir(mode=0o700)
        ws.witness_dir.mkdir(parents=True, exist_ok=True)
        log_private = keygen("log")
        write_private(ws.keys_dir / "log.key", keys.private_pem(log_private, None))
        vkey = checkpoint.verifier_key(origin, keys.public_raw(log_private))
        (ws.keys_dir / "log.vkey").write_text(vkey + "\n")
        public = identity.new_key_file(ws.principal_key_path(admin), passphrase, keygen(admin))
        schema.upgrade(engine)
        (home / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        ctx = Context(ws, engine, actor=admin, clock=now, passphrase=lambda _w: passphrase)
        with ctx.write() as tx:
            pid = identity.insert_principal(tx, admin, display_name, public)
            identity.insert_grant(tx, pid, "admin")
            tx.record(
                "workspace.init",
                "workspace",
                {"origin": origin, "admin": admin, "log_key": vkey, "workspace_id": wid},
            )
        # governed from the first version on: the default policy is active at once
        source = policy or policies.bundled_default()
        with ctx.write() as tx:
            policies.activate_document(tx, read_toml(source), source.name)
        (home / MAKING).unlink()
    except BaseException:
        engine.dispose()
        discard(home, created_home)
        raise
    return ctx


def discard(home: Path, created_home: bool) -> None:
    """Remove a workspace this process was making and could not finish: the
    directory if it made it, else what is in it. Only once its init has
    claimed the directory (`_claim`): before that, what is there is another's."""
    if created_home:
        shutil.rmtree(home, ignore_errors=True)
        return
    for child in home.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# Made first, exclusively, by the `cmi init` that makes the workspace; removed
# when it is done. Two inits of one home at once had both passed the checks:
# one then failed on the other's tables and deleted the home, the workspace
# the other had just reported made.
MAKING = ".cmi-init"


def _check_home(home: Path) -> str:
    """What `home` is ("missing" or "directory"), if a workspace may be made there."""
    if kind_of(home / MAKING, "--home") != "missing":
        raise _making(home)
    if kind_of(home / CONFIG_FILE, "--home") != "missing":
        raise BadInput(f"{home}: already a cmi workspace; nothing was changed")
    kind = kind_of(home, "--home")
    if kind not in ("missing", "directory"):
        raise BadInput(f"{home}: exists and is not a directory")
    if kind == "directory" and any(home.iterdir()):
        raise BadInput(f"{home}: directory is not empty; choose an empty or new directory")
    return kind


def _claim(home: Path) -> None:
    """Make the home (if missing) and the MAKING mark in it, exclusively; then
    check again that nothing else is there: another init may have made its
    workspace between the first checks and this mark."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(home / MAKING, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise _making(home) from None
    except OSError as exc:
        raise BadInput(f"{home}: cannot create ({exc.strerror})") from None
    if [p.name for p in home.iterdir()] != [MAKING]:
        (home / MAKING).unlink()
        _check_home(home)  # says what is there now
        raise BadInput(f"{home}: directory is not empty; choose an empty or new directory")


def _making(home: Path) -> BadInput:
    return BadInput(
        f"{home}: another `cmi init` is making a workspace here (if none is running, one "
        f"was interrupted: remove {home / MAKING} and what it made); nothing was changed"
    )
