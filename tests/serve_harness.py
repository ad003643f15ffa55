"""A launcher running `serve` on a free loopback port, for the serving tests and bench/serve.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything the server wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr


def start(launcher: Path, *flags: str, weights: Path | None = None, env: dict[str, str] | None = None,
          ready_within: float = 60, runner: list[str] | None = None, until: str = "ready") -> Server:
    """Starts `launcher serve` on 127.0.0.1 (under `runner`, e.g. qemu, if given) and waits until
    /v2/health/<until> (ready, or live) answers 200."""
    port = free_port()
    full_env = {**os.environ, **(env or {}), **({"KILN_WEIGHTS": str(weights)} if weights else {})}
    process = subprocess.Popen([*(runner or []), str(launcher), "serve", "--host", "127.0.0.1", "--port", str(port), *flags],
                               env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = Server(process, port)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}: {process.stderr.read()}")
        try:
            if requests.get(f"{server.url}/v2/health/{until}", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"serve was not {until} within {ready_within} s")
