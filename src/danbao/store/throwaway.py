"""A throwaway PostgreSQL cluster in a temporary directory, for tests and benchmarks.

Never a system service: `initdb` into a fresh directory, `pg_ctl start` on a free loopback
port, and everything removed on `stop()`. Durability settings stay at PostgreSQL's
defaults (fsync on, synchronous_commit on): benchmarks measure the real thing. When run as
root (CI), the server runs as the `postgres` user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

START_TIMEOUT_SECONDS = 60


class PostgresMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresMissing("no PostgreSQL server binaries (initdb) found; install the postgresql package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    def __init__(self, *, max_connections: int = 200):
        self.bindir = find_bindir()
        self.port = _free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="danbao-pg-"))
        self.datadir = self.tmp / "data"
        self.max_connections = max_connections
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            try:
                pwd.getpwnam(self._user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", self._user], check=True)
            shutil.chown(self.tmp, user=self._user)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> ThrowawayPostgres:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        self.restart()
        return self

    def restart(self) -> None:
        """Start the server on the cluster as it is (after `crash`, it recovers from its WAL)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.tmp} "
            f"-c max_connections={self.max_connections} -c shared_buffers=256MB "
            "-c max_locks_per_transaction=256"
        )
        self._run("pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.tmp / "log"), "-w",
                  "-t", str(START_TIMEOUT_SECONDS), "start")

    def crash(self) -> None:
        """Stop the server as a crash would: at once, no checkpoint, no goodbye to its
        clients (what the OS had of its files stays). The cluster stays for `restart`."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            suffix = f" TEMPLATE {template}" if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)

    def stop(self) -> None:
        try:
            self.crash()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
