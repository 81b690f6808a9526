"""A real server goes down and comes back: fail_closed refuses clearly, fail_open allows,
journals, and replays with nothing lost and nothing counted twice.

Each test starts its own redis-server / PostgreSQL cluster on a free port (never the shared
ones) and stops it with a real shutdown.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbudget import StoreUnavailable
from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.store import open_store
from llmbudget.store._failover import FailoverStore

from ._servers import REQUIRE

T = float(int(time.time()))
META = ReservationMeta((("model", "m"),), 10, 20)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _missing(tool: str) -> None:
    msg = f"{tool} is not installed; install the Redis / PostgreSQL server packages"
    if REQUIRE:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


class RedisServer:
    def __init__(self, dirname: Path, *extra: str) -> None:
        self.exe = shutil.which("redis-server") or _missing("redis-server")
        self.port = _port()
        self.dir = dirname
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.query = ""  # more URL options for the store under test

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(self.exe),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl") or _missing("pg_ctl")
    return Path(str(exe)).resolve().parent


class PostgresServer:
    """A throw-away cluster. initdb refuses root, so as root it runs as user postgres."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = _port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmb-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        # commits queued without waiting (?commit=pipelined) across the outage
        pytest.param("redis-pipelined", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RedisServer | PostgresServer]:
    srv: RedisServer | PostgresServer
    srv = RedisServer(tmp_path) if request.param != "postgres" else PostgresServer()
    srv.query = "&commit=pipelined" if request.param == "redis-pipelined" else ""
    srv.start()
    try:
        yield srv
    finally:
        with contextlib.suppress(Exception):
            srv.stop()
        if isinstance(srv, PostgresServer):
            srv.remove()


def _fast(server: RedisServer | PostgresServer) -> str:
    """Caller's clock; and for PostgreSQL, give up on a connection after 1 s."""
    extra = "&pool_timeout=1" if isinstance(server, PostgresServer) else server.query
    return "?clock=caller" + extra


def ch(key: str, amount: int, cap: int | None = 10_000) -> Charge:
    return Charge(key, key, amount, cap)


def replay_when_back(store: FailoverStore, within: float = 10.0) -> None:
    """Replay the journal once the restarted server takes connections again."""
    deadline = time.monotonic() + within
    while True:
        try:
            store.replay()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _used(store: FailoverStore) -> dict[str, tuple[int, int]]:
    return {c.key: (c.used, c.reserved) for c in store.counters()}


def test_fail_closed_refuses_naming_the_store(
    server: RedisServer | PostgresServer, tmp_path: Path
) -> None:
    store = FailoverStore(open_store(server.url + _fast(server)), mode="fail_closed")
    assert store.reserve("pre", [ch("A", 30)], META, T + 600, T).ok
    server.stop()
    with pytest.raises(StoreUnavailable, match="fail_closed") as err:
        store.reserve("r1", [ch("A", 30)], META, T + 600, T)
    assert f"127.0.0.1:{server.port}" in str(err.value)
    with pytest.raises(StoreUnavailable):
        store.commit("pre", {"A": 25}, Usage(10, 15), T + 1)
    server.start()
    for _ in range(3):  # pooled connections broken by the restart are dropped
        try:
            store.commit("pre", {"A": 25}, Usage(10, 15), T + 1)
            break
        except StoreUnavailable:
            time.sleep(0.2)
    assert _used(store) == {"A": (25, 0)}
    assert [e.id for e in store.events()] == ["pre"]
    store.close()


def test_fail_open_journals_and_replays_exactly_once(
    server: RedisServer | PostgresServer, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    store = FailoverStore(
        open_store(server.url + _fast(server)),
        mode="fail_open",
        journal=journal,
        retry_after=30.0,
    )
    # before: one settled call, one in flight across the outage
    assert store.reserve("before", [ch("A", 30), ch("B", 30, None)], META, T + 600, T).ok
    store.commit("before", {"A": 28, "B": 28}, Usage(10, 18), T + 1)
    assert store.reserve("inflight", [ch("A", 30), ch("B", 30, None)], META, T + 600, T).ok
    store.record("rec0", [ch("A", 5, None)], {"model": "m"}, Usage(5, 0), T + 2)
    before = _used(store)
    assert before == {"A": (33, 30), "B": (28, 30)}

    server.stop()
    expected_a = 33
    # calls during the outage are allowed, their usage journalled
    for i in range(5):
        out = store.reserve(f"down{i}", [ch("A", 40), ch("B", 40, None)], META, T + 600, T + 3)
        assert out.ok
        store.commit(f"down{i}", {"A": 30 + i, "B": 30 + i}, Usage(10, 20 + i), T + 4 + i)
        expected_a += 30 + i
    assert store.reserve("dropped", [ch("A", 40)], META, T + 600, T + 9).ok
    store.release("dropped", T + 10)
    store.commit("inflight", {"A": 22, "B": 22}, Usage(10, 12), T + 11)
    expected_a += 22
    store.record("rec1", [ch("A", 7, None)], {"model": "m"}, Usage(7, 0), T + 12)
    store.record("rec1", [ch("A", 7, None)], {"model": "m"}, Usage(7, 0), T + 12)  # retry
    expected_a += 7
    assert store.down
    assert store.pending() == 8  # 5 calls, the inflight commit, rec1 twice; dropped: none
    saved = journal.read_text()

    server.start()
    replay_when_back(store)
    assert store.pending() == 0
    after = _used(store)
    assert after["A"] == (expected_a, 0)
    assert after["B"] == (28 + 22 + sum(30 + i for i in range(5)), 0)
    ids = sorted(e.id for e in store.events())
    assert ids == sorted(["before", "inflight", "rec0", "rec1"] + [f"down{i}" for i in range(5)])

    # a replay interrupted and run again (the journal restored) counts nothing twice
    journal.write_text(saved)
    assert store.replay() == 8
    assert _used(store) == after
    assert len(list(store.events())) == len(ids)
    store.close()


def test_fail_open_with_the_store_down_at_start(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    srv = RedisServer(tmp_path)  # not started
    store = FailoverStore(
        srv.url + "?clock=caller", mode="fail_open", journal=tmp_path / "j.jsonl", retry_after=0.0
    )
    assert store.reserve("r1", [ch("A", 40)], META, T + 600, T).ok
    store.commit("r1", {"A": 33}, Usage(13, 20), T + 1)
    assert store.pending() == 1
    srv.start()
    try:
        assert store.replay() == 1
        assert _used(store) == {"A": (33, 0)}
    finally:
        store.close()
        srv.stop()


def test_fail_closed_with_the_store_down_at_start(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_port()}/0"
    store = FailoverStore(url, mode="fail_closed")
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1.*fail_closed|fail_closed.*127"):
        store.reserve("r1", [ch("A", 1)], META, T + 600, T)
