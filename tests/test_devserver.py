"""``make run`` (``python -m crm.devserver``) for real: it serves, and Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from crm.billing.local_stripe import API_VERSION
from crm.demo import DEMO_LOGINS
from crm.devserver import LOCAL_STRIPE_KEY
from tests.apps import ROOT, app_process_env, free_port


class DevServer:
    def __init__(self, instance: Path, port: int | None = None) -> None:
        self.instance = instance
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crm.devserver"],
            cwd=ROOT,
            env=app_process_env(instance, PORT=str(self.port)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"devserver did not print {text!r}:\n{self.output}")
            time.sleep(0.1)

    def family(self) -> list[psutil.Process]:
        """The supervisor's children and theirs, and the embedded Redis server (a daemon of its own)."""
        processes = psutil.Process(self.process.pid).children(recursive=True)
        socket = next(line.split("unix://", 1)[1].strip() for line in self.lines if "embedded Redis at" in line)
        processes += [p for p in psutil.process_iter(["cmdline"]) if socket in " ".join(p.info["cmdline"] or [])]
        return processes

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def devserver(tmp_path):
    servers: list[DevServer] = []

    def start(port: int | None = None) -> DevServer:
        servers.append(DevServer(tmp_path / "instance", port))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_make_run_serves_and_ctrl_c_stops_web_worker_and_redis(devserver):
    server = devserver()
    server.wait_for("=" * 72 + "\n\n")
    assert server.url in server.output
    assert "flask db upgrade" in server.output
    assert "Demo logins" in server.output
    assert all(login.email in server.output for login in DEMO_LOGINS)
    assert "alembic.runtime.plugins" not in server.output  # no library chatter around the banner
    assert "Stripe: the local test server" in server.output  # no STRIPE_SECRET_KEY: billing works offline
    status, body = get(server.url + "healthz")
    assert (status, body.replace(" ", "").strip()) == (200, '{"database":"ok","redis":"ok","status":"ok"}')
    status, body = get(server.url + "auth/login")
    assert status == 200
    assert 'name="password"' in body
    family = server.family()
    commands = [" ".join(p.cmdline()) for p in family]
    assert any("flask run" in c for c in commands), commands
    assert any("flask crm worker" in c for c in commands), commands
    assert any("redis-server" in c for c in commands), commands

    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=30) == 0, server.output
    _gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
    assert "== stopped" in server.output


def test_the_logins_stay_last_on_screen_and_the_worker_logs_to_the_instance_folder(devserver):
    server = devserver()
    server.wait_for(DEMO_LOGINS[-1].email)
    worker_log = server.instance / "worker.log"
    deadline = time.monotonic() + 30
    while "Listening on" not in (worker_log.read_text() if worker_log.exists() else ""):  # the worker is up
        assert time.monotonic() < deadline, server.output
        time.sleep(0.2)
    time.sleep(2)  # and has said its routine things, somewhere

    lines = [line for line in server.output.splitlines() if line.strip()]
    assert lines[-1] == "=" * 72, server.output  # the banner's end is still the last thing on screen
    assert DEMO_LOGINS[-1].email in lines[-2]  # right after the logins
    assert "rq.worker" not in server.output and "Listening on" not in server.output
    assert f"The worker logs to {worker_log}" in server.output
    assert all(server.output.index(login.email) > server.output.index("started worker") for login in DEMO_LOGINS)
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=30) == 0, server.output


def test_when_a_child_dies_the_other_is_stopped_and_the_exit_is_non_zero(devserver):
    server = devserver()
    server.wait_for("is running at")
    family = server.family()
    worker = next(p for p in family if "flask crm worker" in " ".join(p.cmdline()))
    worker.kill()
    assert server.process.wait(timeout=30) == 1
    _gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
    assert "worker exited" in server.output


def stripe_api(url: str, data: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {LOCAL_STRIPE_KEY}", "Stripe-Version": API_VERSION}
    request = urllib.request.Request(url, data=data.encode() if data else None, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_local_stripe_server_keeps_its_port_and_its_state_across_a_restart(devserver):
    server = devserver()
    server.wait_for("is running at")
    stripe_url = f"http://127.0.0.1:{server.port + 1000}"  # LOCAL_STRIPE_PORT's default: PORT + 1000
    assert f"local Stripe test server at {stripe_url} " in server.output
    customer = stripe_api(stripe_url + "/v1/customers", "name=Bedrift+AS")
    state_file = server.instance / "local-stripe.json"
    assert customer["id"] in state_file.read_text()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=30) == 0, server.output

    again = devserver(server.port)
    again.wait_for("is running at")
    assert f"local Stripe test server at {stripe_url} " in again.output
    assert stripe_api(f"{stripe_url}/v1/customers/{customer['id']}") == customer
    again.process.send_signal(signal.SIGINT)
    assert again.process.wait(timeout=30) == 0, again.output


def test_make_run_stops_with_a_clear_message_when_the_local_stripe_port_is_taken(devserver):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1000))
        taken.listen()
        server = devserver(port)
        assert server.process.wait(timeout=90) == 1, server.output
    server.reader.join(timeout=10)  # all it printed
    assert f"cannot listen on 127.0.0.1:{port + 1000}" in server.output
    assert "LOCAL_STRIPE_PORT" in server.output
    assert "started web server" not in server.output
