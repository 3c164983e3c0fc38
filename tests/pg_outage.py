"""A PostgreSQL database that stops answering, for the outage tests: new
connections are refused and the open ones are cut, as when a team's server
restarts. Run as a script (a hook command), it starts one and returns."""

from __future__ import annotations

import sys


class Outage:
    """The database stops answering: new connections are refused and the
    open ones are cut, as when a team's server restarts."""

    def __init__(self, url: str) -> None:
        self.admin = url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
        self.admin += "/postgres"
        self.database = url.rsplit("/", 1)[1]

    def _allow(self, allowed: bool) -> None:
        import psycopg
        from psycopg import sql

        alter = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(self.database), sql.SQL("true" if allowed else "false")
        )
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(alter)
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (self.database,),
                )

    def __enter__(self) -> Outage:
        self._allow(False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._allow(True)


if __name__ == "__main__":
    sys.stdin.read()  # the event a hook command is given
    Outage(sys.argv[1]).__enter__()
