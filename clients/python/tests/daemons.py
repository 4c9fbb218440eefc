"""Real daemons for the tests: a temporary config, socket and log; kill and restart.

The binary is $RLIMITD_BIN, else <repo>/build/rlimitd; a test that needs it fails
(never skips) when it is missing. Sockets live in a short temporary directory
(Unix socket paths are limited to 108 bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from rlimit import Client, RateLimitError

HERE = Path(__file__).resolve().parent
PYTHON_DIR = HERE.parent
REPO = PYTHON_DIR.parent.parent
VECTORS = REPO / "proto" / "vectors" / "vectors.json"

# Policies of the test daemon; tests use keys of their own so they do not interfere.
POLICIES: dict[str, dict[str, Any]] = {
    "fw5": {"algorithm": "fixed_window", "limit": 5, "period": "1h"},
    "swl3": {"algorithm": "sliding_window_log", "limit": 3, "period": "1h"},
    "swl1": {"algorithm": "sliding_window_log", "limit": 1, "period": "1h"},
    "gcra10": {"algorithm": "gcra", "limit": 10, "period": "1s", "burst": 1},
    "api": {"algorithm": "token_bucket", "limit": 100, "period": "1m", "burst": 20},
    "login": {"algorithm": "sliding_window_log", "limit": 2, "period": "15m",
              "exempt": ["ip:10.0.0.1"], "overrides": {"apikey:partner-42": {"limit": 50}}},
    "upload": {"algorithm": "fixed_window", "limit": 10, "period": "1h"},
    "search": {"algorithm": "fixed_window",
               "rates": [{"limit": 10, "period": "1s"}, {"limit": 5000, "period": "1d"}]},
    "pair_a": {"algorithm": "fixed_window", "limit": 3, "period": "1h"},
    "pair_b": {"algorithm": "fixed_window", "limit": 1, "period": "1h"},
    "shadow1": {"algorithm": "fixed_window", "limit": 1, "period": "1h", "mode": "shadow"},
    "exempt1": {"algorithm": "fixed_window", "limit": 1, "period": "1h", "exempt": ["vip"]},
}


def rlimitd_binary() -> Path:
    """Returns the daemon binary; fails the test if it is not there."""
    path = Path(os.environ.get("RLIMITD_BIN") or REPO / "build" / "rlimitd")
    if not os.access(path, os.X_OK):
        pytest.fail(f"rlimitd binary {path} is missing (build it with `make`, or set RLIMITD_BIN)")
    return path


def socket_dir() -> str:
    return tempfile.mkdtemp(prefix="rlpy", dir="/tmp")


def free_port() -> int:
    """Returns a TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """A real rlimitd on a temporary Unix socket (admin) and a TCP port (not admin).

    stop() kills it, start() starts it again on the same addresses, close() cleans up.
    """

    def __init__(self, policies: dict[str, dict[str, Any]] = POLICIES, **config: Any) -> None:
        self.directory = socket_dir()  # holds the socket, config and log; close() removes it
        self.socket_path = os.path.join(self.directory, "rlimitd.sock")
        self.address = f"unix:{self.socket_path}"  # what clients connect to
        self.tcp_address = f"tcp:127.0.0.1:{free_port()}"  # the same daemon over TCP
        self.config_path = os.path.join(self.directory, "rlimitd.json")
        self.log_path = os.path.join(self.directory, "rlimitd.log")
        self.process: subprocess.Popen[bytes] | None = None
        config = {"listen": [self.address, self.tcp_address], "policies": policies, **config}
        Path(self.config_path).write_text(json.dumps(config, indent=2))

    def start(self) -> None:
        binary = rlimitd_binary()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(binary), "-f", "-c", self.config_path], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        with Client(self.address, timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    pytest.fail(f"rlimitd exited with {self.process.returncode}:\n{self.log()}")
                try:
                    client.ping()
                    return
                except RateLimitError:
                    time.sleep(0.02)
        pytest.fail(f"rlimitd did not answer PING within 10 s:\n{self.log()}")

    def stop(self) -> None:
        """Kills the daemon (SIGKILL: no goodbye to clients) and removes its socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        self.process = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def close(self) -> None:
        """Stops the daemon and removes its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""



def unique_key(name: str) -> str:
    """Returns a key no other test (or earlier run against the same daemon) uses."""
    return f"{name}-{os.getpid()}-{time.monotonic_ns()}"
