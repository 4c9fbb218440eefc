"""Fixtures: a real rlimitd per session (and per test where one is killed), a fake one.

Tests that use a real daemon are marked `daemon` (`-m "not daemon"` runs the rest).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from daemons import Daemon, socket_dir
from fakedaemon import FakeDaemon

REAL_DAEMON_FIXTURES = {"daemon", "own_daemon", "uvicorn_servers"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "daemon: needs the real rlimitd binary")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_DAEMON_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.daemon)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One real daemon for the session; tests must use keys of their own."""
    instance = Daemon()
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


@pytest.fixture
def own_daemon() -> Iterator[Daemon]:
    """A real daemon for one test, which may kill and restart it."""
    instance = Daemon()
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    """A started fake daemon on a temporary socket."""
    directory = socket_dir()
    instance = FakeDaemon(os.path.join(directory, "fake.sock"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(directory, ignore_errors=True)
