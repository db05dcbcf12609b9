"""A throwaway Observatory for the fault and soak scripts: gunicorn, Celery worker and beat as
child processes of the script, on a database and a Redis database of their own, and, when a
script must stop PostgreSQL itself, a private PostgreSQL cluster.

Nothing here imports Django: the processes are the production commands (README, Production),
configured only by environment variables, so what the scripts break is what users run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout: float, what: str, interval: float = 0.1):
    """Poll `check()` until it returns something truthy; that value, or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def rss_kib(pid: int) -> int:
    """Resident set size of one process, KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (gunicorn's and Celery's forked workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
    return found


class Postgres:
    """A private PostgreSQL cluster in `root` on a free port: a script may stop and start it.

    initdb refuses to run as root; as root the cluster belongs to the `postgres` user.
    """

    def __init__(self, root: Path) -> None:
        self.root, self.port = Path(root), free_port()
        self.data, self.log = self.root / "pgdata", self.root / "postgres.log"
        self.bin = Path(
            subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        )
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def init(self) -> Postgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.root.parent.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: sessions are cut and transactions rolled back, as an operator's restart does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Stack:
    """gunicorn, Celery worker(s) and beat on `database_url` and `redis_url`, in worker assembly.

    Each process runs in a session of its own, so `kill` reaches its forked children too; its
    output goes to `<workdir>/<name>.log`.
    """

    def __init__(self, *, database_url: str, redis_url: str, workdir: Path, env: dict | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "observatory.settings", "SECRET_KEY": "bench-only",
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, "OBSERVATORY_ASSEMBLY": "worker",
            "PYTHONUNBUFFERED": "1", **(env or {}),
        }  # fmt: skip
        self.processes: dict[str, subprocess.Popen] = {}
        self.url = ""

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def setup(self, app_slug: str = "faults", org: str = "faults") -> str:
        """Migrate, create an app and return a new API key for it."""
        self.manage("migrate", "--noinput", "-v", "0")
        return self.manage("create_api_key", app_slug, "--org", org, "--create").strip().splitlines()[-1]

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.processes[name] = process
        return process

    def start_web(self, workers: int = 2, *, name: str = "web", env: dict | None = None) -> str:
        """gunicorn on a free port (`env`: settings of its own); its URL, once it answers /healthz."""
        url = f"http://127.0.0.1:{free_port()}"
        self._spawn(name, [str(BIN / "gunicorn"), "observatory.wsgi", "-b", url.removeprefix("http://"),
                           "-w", str(workers), "--timeout", "60", "--graceful-timeout", "5"], env)  # fmt: skip
        wait_until(lambda: self._healthy(name, url), timeout=60, what=f"{name} answering /healthz")
        self.url = self.url or url
        return url

    def _healthy(self, name: str, url: str) -> bool:
        self.check_running(name)
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def start_worker(self, name: str = "worker", concurrency: int = 1) -> subprocess.Popen:
        return self._spawn(name, [str(BIN / "celery"), "-A", "observatory", "worker", "-c", str(concurrency),
                                  "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
                                  "-l", "INFO"])  # fmt: skip

    def start_beat(self) -> subprocess.Popen:
        schedule = self.workdir / "beat-schedule"
        return self._spawn("beat", [str(BIN / "celery"), "-A", "observatory", "beat", "-s", str(schedule),
                                    "-l", "INFO"])  # fmt: skip

    def check_running(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process and every child of its session; wait for the leader to go."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def rss(self) -> dict[str, int]:
        """KiB resident per process, keyed `name:pid` (the leader and each forked child)."""
        return {f"{name}:{pid}": rss_kib(pid) for name, p in self.processes.items() for pid in process_tree(p.pid)}

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
