"""rlhttpconns.py: HTTP connection checks for test_security_conns.sh (issue 11 point 8).

  cap ADDR N          N idle connections are held; the next one gets 503 and EOF; once they
                      close, /metrics counts one open connection (the asking one)
  slow ADDR SECONDS   a request whose header lines come every 0.3 s must be closed within
                      SECONDS (prints how long it lasted)
  exhaust ADDR SOCK PID  idle HTTP connections past the daemon's descriptor limit: over 2 s the
                      daemon uses little CPU, and PING on a binary connection opened before
                      is still answered
"""
from __future__ import annotations

import socket
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import rlwire  # noqa: E402


def http_conn(addr: str) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(s: socket.socket, seconds: float) -> bytes:
    s.settimeout(seconds)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def metric(addr: str, name: str) -> int:
    s = http_conn(addr)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    for line in read_all(s, 10).decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise SystemExit(f"no {name} in /metrics")


def cmd_cap(addr: str, n: int) -> int:
    held = [http_conn(addr) for _ in range(n)]
    time.sleep(0.3)  # (the daemon adopts them in its next loop iteration)
    extra = http_conn(addr)
    answer = read_all(extra, 5)
    print("over the cap:", answer.split(b"\r\n", 1)[0].decode(errors="replace"))
    for s in held:
        s.close()
    ok = answer.startswith(b"HTTP/1.1 503")
    for _ in range(50):
        if metric(addr, "rlimitd_http_connections") == 1:
            break
        time.sleep(0.1)
    open_now = metric(addr, "rlimitd_http_connections")
    print("open connections after closing them:", open_now)
    return 0 if ok and open_now == 1 else 1


def cmd_slow(addr: str, limit: float) -> int:
    s = http_conn(addr)
    start = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    try:
        while time.monotonic() - start < limit + 10:
            s.sendall(b"X-Slow: 1\r\n")
            s.settimeout(0.3)
            try:
                if s.recv(4096) == b"":
                    break
            except socket.timeout:
                pass
    except OSError:
        pass
    lasted = time.monotonic() - start
    print(f"slow headers: closed after {lasted:.1f} s")
    return 0 if lasted <= limit else 1


def cpu_ticks(pid: int) -> int:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cmd_exhaust(addr: str, sock_addr: str, pid: int) -> int:
    binary = rlwire.connect(sock_addr)
    held = []
    for _ in range(200):
        try:
            held.append(http_conn(addr))
        except OSError:
            break
    time.sleep(0.5)
    before = cpu_ticks(pid)
    time.sleep(2)
    used = (cpu_ticks(pid) - before) / 100
    binary.sendall(rlwire.empty_frame(7, rlwire.PING))
    binary.settimeout(5)
    buf = bytearray()
    answers = []
    try:
        while not answers:
            chunk = binary.recv(4096)
            if not chunk:
                break
            buf += chunk
            answers = rlwire.parse_frames(buf)
    except OSError:
        pass
    print(f"{len(held)} idle HTTP connections: the daemon used {used:.2f} s of CPU in 2 s; "
          f"PING answered: {bool(answers)}")
    return 0 if used < 0.5 and answers else 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "cap":
        sys.exit(cmd_cap(sys.argv[2], int(sys.argv[3])))
    if cmd == "slow":
        sys.exit(cmd_slow(sys.argv[2], float(sys.argv[3])))
    sys.exit(cmd_exhaust(sys.argv[2], sys.argv[3], int(sys.argv[4])))
