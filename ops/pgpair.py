"""A throw-away PostgreSQL streaming-replication pair (a primary and a hot standby) for tests and drills.

    python ops/pgpair.py start  --dir DIR --primary-port 55432 --standby-port 55433 [--db jobops]
    python ops/pgpair.py status --dir DIR
    python ops/pgpair.py stop-standby --dir DIR      # the fallback drill: the standby goes away...
    python ops/pgpair.py start-standby --dir DIR     # ...and comes back
    python ops/pgpair.py pause-replay|resume-replay|wait-replayed --dir DIR
    python ops/pgpair.py stop   --dir DIR [--remove]

As a module: ``pair = start(dir, primary_port=..., standby_port=..., dbname="jobops")`` returns a ``Pair`` (URLs,
``sql()``, ``wait_replayed()``, ``pause_replay()``/``resume_replay()``, ``stop_standby()``/``start_standby()``,
``status()``, ``stop(remove=...)``); ``Pair.load(dir)`` finds a started pair again from ``DIR/pair.json``.

The pair is for drills, not for data: fsync and full-page writes are off and buffers are small, so it starts in a
few seconds. Both servers listen on 127.0.0.1 only, where they ask for a password (SCRAM; a random one per pair, in
the URLs and in ``DIR/pair.json``, readable by its owner only), so no other local user can log in as their
superuser; their unix sockets stay inside DIR (0700, the server's user only), where the pair's own tools connect
with trust (``sql()``, ``pg_basebackup``, the standby's replication connection). Run as root, the PostgreSQL
binaries run as the ``postgres`` OS user (``initdb`` refuses root) and DIR is handed to that user; run as another
user, they run as that user. Any other PostgreSQL server (e.g. the one on 5432) is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess  # nosec B404 - runs the local PostgreSQL binaries with fixed argument lists
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PG_ROOT = Path("/usr/lib/postgresql")
STATE_FILE = "pair.json"
OS_USER = "postgres"

PRIMARY_CONF = """
# --- ops/pgpair.py (a drill pair: speed over durability) ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = '64MB'
hot_standby = on
hot_standby_feedback = on
# The standby reports its replay position every second (pg_stat_replication's replay_lsn / replay_lag).
wal_receiver_status_interval = '1s'
fsync = off
full_page_writes = off
shared_buffers = '16MB'
max_connections = 50
logging_collector = off
log_min_messages = warning
"""

HBA = """# ops/pgpair.py: trust on the unix sockets (in DIR, 0700), a password on the loopback
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
"""


class PairError(RuntimeError):
    """The pair could not be started, reached or stopped (the message says why, with the server log's tail)."""


def bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_basebackup``."""
    candidates = []
    for path in PG_ROOT.glob("*/bin"):
        if (path / "initdb").exists() and (path / "pg_basebackup").exists():
            try:
                candidates.append((float(path.parent.name), path))
            except ValueError:
                continue
    if not candidates:
        raise PairError(f"no PostgreSQL server binaries under {PG_ROOT}/<version>/bin")
    return max(candidates)[1]


def available() -> bool:
    """Whether a pair can be started here (the server binaries exist, and as root a ``postgres`` user)."""
    try:
        bindir()
    except PairError:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return False
    return shutil.which("runuser") is not None or os.geteuid() != 0


def _as_owner(argv: list[str]) -> list[str]:
    # initdb refuses to run as root, and the data directories must belong to the server's user.
    if os.geteuid() == 0:
        return ["runuser", "-u", OS_USER, "--", *argv]
    return argv


def _run(argv: list[str], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # nosec B603 - fixed binaries, arguments built here
        _as_owner(argv), capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise PairError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _hand_over(path: Path) -> None:
    """``path`` (created if missing) belongs to the server's user, and every parent lets that user through."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(OS_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    for parent in path.resolve().parents:
        info = parent.stat()
        # Not traversable by that user (e.g. pytest's 0700 temporary directory of root's).
        if not (info.st_mode & 0o001 or (info.st_uid == entry.pw_uid and info.st_mode & 0o100)):
            raise PairError(f"{parent} is not traversable by the {OS_USER} user: pick a DIR elsewhere (e.g. /tmp)")


@dataclass
class Pair:
    dir: str
    primary_port: int
    standby_port: int
    dbname: str
    bindir: str
    password: str = ""

    # --- where it is ----------------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.dir)

    @property
    def primary_data(self) -> Path:
        return self.root / "primary"

    @property
    def standby_data(self) -> Path:
        return self.root / "standby"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    @property
    def primary_url(self) -> str:
        return f"postgres://postgres:{self.password}@127.0.0.1:{self.primary_port}/{self.dbname}"

    @property
    def standby_url(self) -> str:
        return f"postgres://postgres:{self.password}@127.0.0.1:{self.standby_port}/{self.dbname}"

    def _bin(self, name: str) -> str:
        return str(Path(self.bindir) / name)

    def save(self) -> None:
        # It holds the password: its owner only.
        fd = os.open(self.root / STATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as state:
            state.write(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Pair:
        state = Path(directory) / STATE_FILE
        if not state.exists():
            raise PairError(f"no pair in {directory} ({STATE_FILE} missing)")
        fields = json.loads(state.read_text())
        # The directory is the one asked for, never the one the (postgres-owned) state file names: `stop --remove`
        # runs as root and must not delete a path someone wrote into pair.json.
        fields["dir"] = str(Path(directory).resolve())
        return cls(**fields)

    # --- SQL --------------------------------------------------------------------------------------------------

    def sql(self, query: str, *, standby: bool = False, db: str | None = None, timeout: float = 30) -> str:
        """Run ``query`` with psql on the primary (or the standby); its unaligned, tuples-only output."""
        port = self.standby_port if standby else self.primary_port
        argv = [self._bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.sockets)]
        argv += ["-p", str(port), "-U", "postgres", "-d", db or self.dbname, "-c", query]
        return _run(argv, timeout=timeout).stdout.strip()

    # --- lifecycle --------------------------------------------------------------------------------------------

    def _pg_ctl(self, data: Path, action: str, *, log: Path | None = None, timeout: int = 60) -> None:
        argv = [self._bin("pg_ctl"), action, "-D", str(data), "-w", "-t", str(timeout)]
        if action == "start":
            argv += ["-l", str(log)]
        if action in ("stop", "restart"):
            argv += ["-m", "fast"]
        try:
            _run(argv, timeout=timeout + 10)
        except PairError as exc:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise PairError(f"{exc}\n--- {log} ---\n{tail}") from exc

    def _running(self, data: Path) -> bool:
        return _run([self._bin("pg_ctl"), "status", "-D", str(data)], check=False).returncode == 0

    def start_primary(self) -> None:
        if not self._running(self.primary_data):
            self._pg_ctl(self.primary_data, "start", log=self.root / "primary.log")

    def start_standby(self) -> None:
        """Start the standby again (after ``stop_standby``): it reconnects to the primary and catches up."""
        if not self._running(self.standby_data):
            self._pg_ctl(self.standby_data, "start", log=self.root / "standby.log")

    def stop_standby(self) -> None:
        """Stop only the standby (``pg_ctl stop -m fast``): the fallback drill."""
        if self.standby_data.exists() and self._running(self.standby_data):
            self._pg_ctl(self.standby_data, "stop")

    def stop(self, *, remove: bool = False) -> None:
        """Stop both servers (fast shutdown), standby first; with ``remove``, delete DIR."""
        errors = []
        for data in (self.standby_data, self.primary_data):
            if data.exists() and self._running(data):
                try:
                    self._pg_ctl(data, "stop")
                except PairError as exc:
                    errors.append(str(exc))
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise PairError("\n".join(errors))

    # --- replication ------------------------------------------------------------------------------------------

    def pause_replay(self) -> None:
        """The standby stops applying WAL (it keeps receiving it): its reads stay at the current point."""
        self.sql("SELECT pg_wal_replay_pause()", standby=True)
        # Paused only once the startup process got the request (pg_get_wal_replay_pause_state(), PostgreSQL 14+).
        deadline = time.monotonic() + 10
        while self.sql("SELECT pg_get_wal_replay_pause_state()", standby=True) != "paused":
            if time.monotonic() > deadline:
                raise PairError("the standby did not pause its replay within 10 s")
            time.sleep(0.05)

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()", standby=True)

    def wait_replayed(self, timeout: float = 30) -> float:
        """Wait until the standby has replayed everything the primary has written so far; the seconds it took."""
        started = time.monotonic()
        target = self.sql("SELECT pg_current_wal_lsn()")
        query = f"SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{target}') >= 0"  # nosec B608 - an LSN we read
        while self.sql(query, standby=True) != "t":
            if time.monotonic() - started > timeout:
                raise PairError(f"the standby did not replay up to {target} within {timeout} s")
            time.sleep(0.02)
        return time.monotonic() - started

    def status(self) -> dict[str, Any]:
        """Whether each server runs and is in recovery, and the primary's view of replication (lag in bytes and
        seconds, from ``pg_stat_replication``)."""
        report: dict[str, Any] = {"dir": self.dir, "primary_url": self.primary_url, "standby_url": self.standby_url}
        for name, data, standby in (("primary", self.primary_data, False), ("standby", self.standby_data, True)):
            running = data.exists() and self._running(data)
            entry: dict[str, Any] = {"running": running}
            if running:
                try:
                    entry["in_recovery"] = self.sql("SELECT pg_is_in_recovery()", standby=standby, db="postgres") == "t"
                except PairError as exc:
                    entry["error"] = str(exc).strip().splitlines()[-1]
            report[name] = entry
        if report["primary"]["running"]:
            rows = self.sql(
                "SELECT application_name, state, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, "
                "COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 "
                "FROM pg_stat_replication",
                db="postgres",
            )
            report["replication"] = [
                {"application_name": name, "state": state, "replay_lag_bytes": int(lag or 0), "replay_lag_s": float(s)}
                for name, state, lag, s in (line.split("|") for line in rows.splitlines() if line)
            ]
        return report


def start(
    directory: str | Path, *, primary_port: int, standby_port: int, dbname: str = "jobops", timeout: int = 60
) -> Pair:
    """Create and start a primary on ``primary_port`` with database ``dbname``, then a hot standby streaming from
    it on ``standby_port`` (``pg_basebackup -R``); both in ``directory`` (which must be empty or missing).

    Returns the running ``Pair``. On failure, whatever was started is stopped again and ``PairError`` is raised.
    """
    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        raise PairError(f"{root} is not empty (stop --remove an old pair first)")
    for port in (primary_port, standby_port):
        if not _port_free(port):
            raise PairError(f"port {port} on 127.0.0.1 is in use")
    pair = Pair(
        dir=str(root),
        primary_port=primary_port,
        standby_port=standby_port,
        dbname=dbname,
        bindir=str(bindir()),
        password=secrets.token_urlsafe(24),
    )
    _hand_over(root)
    pair.save()
    _hand_over(pair.sockets)
    pwfile = root / "initdb-password"
    try:
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(pair.password + "\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam(OS_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        _run(
            [
                pair._bin("initdb"),
                "-D",
                str(pair.primary_data),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            timeout=timeout,
        )
        pwfile.unlink()
        with (pair.primary_data / "postgresql.conf").open("a") as conf:
            conf.write(PRIMARY_CONF.format(port=primary_port, sockets=pair.sockets))
        (pair.primary_data / "pg_hba.conf").write_text(HBA)
        pair._pg_ctl(pair.primary_data, "start", log=root / "primary.log", timeout=timeout)
        pair.sql(f'CREATE DATABASE "{dbname}"', db="postgres")  # nosec B608 - the caller's own database name
        _run(
            [
                pair._bin("pg_basebackup"),
                "-h",
                str(pair.sockets),
                "-p",
                str(primary_port),
                "-U",
                "postgres",
                "-D",
                str(pair.standby_data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            timeout=timeout,
        )
        with (pair.standby_data / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# ops/pgpair.py: the standby's own port\nport = {standby_port}\n")
        pair._pg_ctl(pair.standby_data, "start", log=root / "standby.log", timeout=timeout)
    except BaseException:
        pwfile.unlink(missing_ok=True)
        try:
            pair.stop()
        except PairError:
            pass
        raise
    return pair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("start", help="initdb + start a primary, basebackup + start a hot standby")
    start_cmd.add_argument("--dir", required=True)
    start_cmd.add_argument("--primary-port", type=int, default=55432)
    start_cmd.add_argument("--standby-port", type=int, default=55433)
    start_cmd.add_argument("--db", default="jobops", help="database created on the primary (default jobops)")
    for name, text in (
        ("status", "running / in recovery / replication lag"),
        ("stop", "stop both (fast)"),
        ("stop-standby", "stop the standby only"),
        ("start-standby", "start the standby again"),
        ("pause-replay", "the standby stops applying WAL (pg_wal_replay_pause)"),
        ("resume-replay", "the standby applies WAL again"),
        ("wait-replayed", "wait until the standby replayed all the primary wrote; print the seconds"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--dir", required=True)
        if name == "stop":
            cmd.add_argument("--remove", action="store_true", help="also delete DIR")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            began = time.monotonic()
            pair = start(args.dir, primary_port=args.primary_port, standby_port=args.standby_port, dbname=args.db)
            print(f"primary {pair.primary_url}\nstandby {pair.standby_url}")
            print(f"started in {time.monotonic() - began:.1f} s")
            return 0
        pair = Pair.load(args.dir)
        if args.command == "status":
            print(json.dumps(pair.status(), indent=2))
        elif args.command == "stop":
            pair.stop(remove=args.remove)
        elif args.command == "stop-standby":
            pair.stop_standby()
        elif args.command == "start-standby":
            pair.start_standby()
        elif args.command == "pause-replay":
            pair.pause_replay()
        elif args.command == "resume-replay":
            pair.resume_replay()
        elif args.command == "wait-replayed":
            print(f"{pair.wait_replayed():.3f}")
        return 0
    except PairError as exc:
        print(f"pgpair: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
