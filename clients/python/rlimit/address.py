"""Daemon addresses: "unix:PATH" or "tcp:HOST:PORT" (HOST may be "[v6]")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed daemon address."""

    family: str  # "unix" or "tcp"
    path: str = ""  # unix: the socket path
    host: str = ""  # tcp: host name or IP literal (without brackets)
    port: int = 0  # tcp: port

    def __str__(self) -> str:
        if self.family == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_address(text: str) -> Address:
    """Parses "unix:PATH" or "tcp:HOST:PORT"; raises ValueError for anything else."""
    family, _, rest = text.partition(":")
    if family == "unix" and rest:
        return Address("unix", path=rest)
    if family == "tcp":
        host, _, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if host and port.isdigit() and 0 < int(port) < 65536:
            return Address("tcp", host=host, port=int(port))
    raise ValueError(f"not a daemon address (unix:PATH or tcp:HOST:PORT): {text!r}")
