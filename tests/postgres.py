"""A real PostgreSQL server with pgvector for the tests: one per session, in a temporary folder.

The server comes from the `pgserver` wheel (the `dev` and `postgres` extras), which bundles
PostgreSQL with pgvector's `vector` extension; Debian's packages lack pgvector here. It listens only
on a Unix socket in its own folder, with trust authentication (except for `PASSWORD_ROLE`, which
must give its password, so that wrong credentials can be tested), and is stopped at the end of the
session. PostgreSQL refuses to run as root, so under root it runs as `nobody`. Each test gets a
fresh database (`fresh_database`). Tests skip, saying why, only when the server cannot be started.
The retrieval benchmark starts its server here too (evals/bench/stores.py).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_counter = itertools.count(1)
PASSWORD_ROLE = "with_password"  # the one role that trust does not let in (pg_hba.conf)


@dataclass(frozen=True)
class Server:
    socket_folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_folder}"

    def fresh_database(self) -> str:
        """A new, empty database on this server; returns its SQLAlchemy URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(
            host=str(self.socket_folder), user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def password_role(self, password: str) -> None:
        """Give `PASSWORD_ROLE` this password (creating the role the first time)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=str(self.socket_folder), user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", [PASSWORD_ROLE]
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            connection.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(PASSWORD_ROLE), sql.Literal(password)
                )
            )


def binaries() -> Path:
    """pgserver's bundled PostgreSQL binaries, or raise `RuntimeError` saying why there are none."""
    # Found, not imported: importing pgserver makes lock files of its own, which we do not use.
    for package in ("pgserver", "psycopg"):
        if importlib.util.find_spec(package) is None:
            raise RuntimeError(
                f"{package} is not installed (pip install -e '.[dev]' installs pgserver, psycopg)"
            )
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.origin is not None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    for name in ("initdb", "pg_ctl", "postgres"):
        if not (folder / name).exists():
            raise RuntimeError(f"pgserver has no {name} binary in {folder}")
    return folder


@contextmanager
def running_server() -> Iterator[Server]:
    """Start a server in a new temporary folder; stop it and delete the folder afterwards."""
    bin_folder = binaries()
    folder = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))  # short: socket paths are limited
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam("nobody")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid}
    folder.chmod(0o755)
    data = folder / "data"
    pg_ctl = [str(bin_folder / "pg_ctl"), "-D", str(data)]

    def run(command: list[str]) -> None:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=folder, **run_as
        )
        if result.returncode != 0:
            log = folder / "log"
            detail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(command[0]).name} failed: {result.stderr}{detail}")

    started = False
    try:
        initdb = [str(bin_folder / "initdb"), "-D", str(data), "-U", "postgres"]
        run([*initdb, "--auth=trust", "--encoding=utf8", "--no-sync"])
        rules = data / "pg_hba.conf"  # the first matching line wins
        rules.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\n" + rules.read_text())
        # No TCP at all; fsync off: a test server need not survive a power cut.
        options = f"-h '' -k {folder} -c fsync=off -c max_connections=50"
        run([*pg_ctl, "-w", "-l", str(folder / "log"), "-o", options, "start"])
        started = True
        yield Server(folder)
    finally:
        if started:
            subprocess.run(
                [*pg_ctl, "-m", "immediate", "stop"], capture_output=True, cwd=folder, **run_as
            )
        shutil.rmtree(folder, ignore_errors=True)
