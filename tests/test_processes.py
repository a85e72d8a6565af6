"""certmon's processes as an operator meets them: killed, interrupted, started twice, run from anywhere.

Each test runs the real command in a process group of its own, as a terminal or a supervisor would, and looks in
/proc for what is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from certmon.core.settings import Settings
from tests.test_cli import certmon, environment, free_port, get

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc to see processes")

START_SECONDS = 120  # a start on a busy 2-core machine: imports, workers, the embedded server, the demo's data
GONE_SECONDS = 10  # how long what a process leaves behind may take to end


def start(command: str, env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """``certmon COMMAND`` in a new session: its pid is the id of its process group, which its workers join."""
    return subprocess.Popen(
        [sys.executable, "-m", "certmon", command, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_ready(server: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        assert server.poll() is None, server.communicate()[1]
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.3)


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def processes() -> Iterator[tuple[int, list[str], str, int, int]]:
    """Every live process: pid, argv, state, process group, session. Zombies have ended: they are not listed."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(entry.name), argv, fields[0], int(fields[2]), int(fields[3])


def in_group(pgid: int) -> list[int]:
    return [pid for pid, _, _, group, _ in processes() if group == pgid]


def postgres_of(directory: Path) -> list[int]:
    """The postmasters of data directories under ``directory`` and the processes of their sessions."""
    inside = str(directory.resolve())
    postmasters = [
        pid
        for pid, argv, _, _, _ in processes()
        if argv[0].endswith("/postgres") and any(arg.startswith(inside) for arg in argv)
    ]
    return postmasters + [pid for pid, _, _, _, sid in processes() if sid in postmasters and pid not in postmasters]


def read_until(stream: object, marker: str, seconds: float = START_SECONDS) -> list[str]:
    """Lines of a child's output up to the first that holds ``marker``."""
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    assert lines and marker in lines[-1], "".join(lines)
    return lines


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts; whatever of them (and of its embedded servers) a failure leaves is killed."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        for pid in in_group(process.pid):  # first: a leftover worker holds the pipes open, communicate would wait
            os.kill(pid, signal.SIGKILL)
        process.communicate()
    for pid in postgres_of(tmp_path):
        os.kill(pid, signal.SIGKILL)


def served(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return environment(
        CERTMON_DATABASE_URL=database_url,
        CERTMON_PORT=str(port),
        CERTMON_PARSE_WORKERS="1",
        CERTMON_SCHEDULER="off",
        **extra,
    )


def test_sigkill_of_serve_leaves_no_worker_running(database_url: str, started: list[subprocess.Popen[str]]) -> None:
    """SIGKILL (as the OOM killer sends it) gives the service no chance to clean up; its parse worker ends anyway."""
    port = free_port()
    server = start("serve", served(database_url, port))
    started.append(server)
    wait_ready(server, port)
    assert len(in_group(server.pid)) >= 2, "the service and its parse worker"
    server.kill()
    server.wait()
    assert wait_until(lambda: not in_group(server.pid), GONE_SECONDS), [
        " ".join(argv) for pid, argv, *_ in processes() if pid in in_group(server.pid)
    ]


def test_ctrl_c_stops_serve_quietly(database_url: str, started: list[subprocess.Popen[str]]) -> None:
    """Ctrl-C reaches every process of the terminal's group: one log line, exit 130, no traceback from any."""
    port = free_port()
    server = start("serve", served(database_url, port))
    started.append(server)
    wait_ready(server, port)
    os.killpg(server.pid, signal.SIGINT)
    _, stderr = server.communicate(timeout=60)
    assert server.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    stopping = [json.loads(line) for line in stderr.splitlines() if '"stopping"' in line]
    assert [line["signal"] for line in stopping] == ["SIGINT"]
    assert wait_until(lambda: not in_group(server.pid), GONE_SECONDS)


async def test_a_busy_port_stops_demo_before_it_touches_the_database(database_url: str) -> None:
    """A second demo on a taken port says so in one line and exits 1, having minted no token and loaded nothing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = certmon("demo", env=served(database_url, port))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"certmon: cannot listen on 127.0.0.1:{port}: the address is already in use"
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_tokens") == 0
        assert await conn.fetchval("SELECT count(*) FROM agencies") == 0
    finally:
        await conn.close()


async def test_each_demo_start_replaces_the_demo_token(database_url: str, started: list[subprocess.Popen[str]]) -> None:
    """Two demo starts leave one valid demo admin token, the one printed last; the first one is refused."""
    conn = await asyncpg.connect(database_url)
    try:
        # A database that holds agencies already is not filled again: the demo only starts and prints its token.
        await conn.execute(
            "INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Ministry of Finance', 'government')"
        )
        printed = []
        for _ in range(2):
            port = free_port()
            demo = start("demo", served(database_url, port))
            started.append(demo)
            printed.append(read_until(demo.stdout, "certmon_")[-1].strip().rpartition(" ")[2])
            wait_ready(demo, port)
            status = {token: get(f"http://127.0.0.1:{port}/api/v1/agencies", token)[0] for token in printed}
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(60) == 0
        assert status == {printed[0]: 401, printed[1]: 200}
        valid = await conn.fetch("SELECT name, role FROM api_tokens WHERE revoked_at IS NULL")
        assert [(r["role"], r["name"].startswith("demo-admin-")) for r in valid] == [("admin", True)]
        # The audit trail names the demo as the writer of its tokens (the agency above is the test's own).
        writers = await conn.fetch("SELECT DISTINCT actor FROM audit_entries WHERE table_name = 'api_tokens'")
        assert [r["actor"] for r in writers] == ["cli:demo"]
    finally:
        await conn.close()


def test_the_data_directory_is_the_users_not_the_current_directorys(tmp_path: Path) -> None:
    """$XDG_DATA_HOME/certmon, else ~/.local/share/certmon; CERTMON_DATA_DIR overrides, made absolute."""
    assert Settings.from_env({"HOME": "/home/soc"}).data_dir == Path("/home/soc/.local/share/certmon")
    xdg = {"HOME": "/home/soc", "XDG_DATA_HOME": "/srv/data"}
    assert Settings.from_env(xdg).data_dir == Path("/srv/data/certmon")
    assert Settings.from_env({**xdg, "XDG_DATA_HOME": "data"}).data_dir == Path("/home/soc/.local/share/certmon")
    assert Settings.from_env({**xdg, "CERTMON_DATA_DIR": "/var/lib/certmon"}).data_dir == Path("/var/lib/certmon")
    assert Settings.from_env({"CERTMON_DATA_DIR": "certmon-data"}).data_dir == Path.cwd() / "certmon-data"


@pytest.mark.timeout(400)
def test_a_killed_demo_is_adopted_and_the_clean_stop_stops_its_database(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """After SIGKILL its embedded PostgreSQL runs on; the next demo, started elsewhere, adopts it; a token created
    from a third directory works on it; SIGTERM then stops the service and its database."""
    env = environment(XDG_DATA_HOME=str(tmp_path / "xdg"), CERTMON_PARSE_WORKERS="1", CERTMON_SCHEDULER="off")
    pgdata = tmp_path / "xdg" / "certmon" / "pg"
    for name in "abc":
        (tmp_path / name).mkdir()
    port = free_port()
    first = start("demo", env, "--port", str(port), cwd=tmp_path / "a")
    started.append(first)
    assert first.stderr is not None
    read_until(first.stderr, "migrations applied")  # the database is up, and the demo starts to load its data
    first.kill()
    first.wait()
    assert postgres_of(pgdata), "the embedded server outlives a process killed outright"

    second = start("demo", env, "--port", str(port), cwd=tmp_path / "b")
    started.append(second)
    assert second.stdout is not None and second.stderr is not None
    token = read_until(second.stdout, "certmon_")[-1].strip().rpartition(" ")[2]
    wait_ready(second, port)
    created = subprocess.run(
        [sys.executable, "-m", "certmon", "token", "create", "--role", "analyst"],
        env=env,
        cwd=tmp_path / "c",
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    analyst = created.stdout.strip().splitlines()[-1]
    status, agencies = get(f"http://127.0.0.1:{port}/api/v1/agencies", analyst)
    assert (status, len(agencies["items"])) == (200, 250), "the token and the demo's data are in one database"
    assert get(f"http://127.0.0.1:{port}/api/v1/agencies", token)[0] == 200
    second.send_signal(signal.SIGTERM)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    assert "adopting the server of processes that are gone" in stderr
    assert wait_until(lambda: not postgres_of(pgdata), GONE_SECONDS), "the clean stop stopped the adopted server"
    assert not (pgdata / "postmaster.pid").exists()
    assert not (tmp_path / "a" / "certmon-data").exists() and not (tmp_path / "b" / "certmon-data").exists()


def test_a_server_that_died_with_certmon_is_started_afresh(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """certmon and its PostgreSQL killed outright, the old pid now another program's (as after a container restart):
    the next command removes the stale postmaster.pid, starts the server, and stops it again when it is done."""
    env = environment(CERTMON_DATA_DIR=str(tmp_path / "data"), CERTMON_PARSE_WORKERS="0", CERTMON_SCHEDULER="off")
    pgdata = tmp_path / "data" / "pg"
    port = free_port()
    server = start("serve", env, "--port", str(port))
    started.append(server)
    wait_ready(server, port)
    server.kill()
    server.wait()
    for pid in postgres_of(pgdata):
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not postgres_of(pgdata), GONE_SECONDS)
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        (pgdata / "postmaster.pid").write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")
        result = certmon("migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "removed the lock files of a server that is gone" in result.stderr
        assert stranger.poll() is None, "the program that holds the old pid now is left alone"
    finally:
        stranger.kill()
        stranger.wait()
    assert "database is up to date" in result.stdout
    assert wait_until(lambda: not postgres_of(pgdata), GONE_SECONDS)
