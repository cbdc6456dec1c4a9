"""Shared test helpers: run the installed console scripts for real."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cli(
    tool: str,
    *args: str | Path,
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` (runner / analyze / report) from this interpreter's environment."""
    return subprocess.run(
        [str(BIN / tool), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def digest(path: Path) -> str | None:
    """sha256 of a file, or None when it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def assert_user_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2, exactly one line on stderr, no traceback. Returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a test cluster, or an unreachable
    address)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_spec(tmp: Path, spec: str, ok_trials: int, timeout: float = 600) -> Path:
    """Write ``spec`` to ``tmp``, run `runner trials` on it into ``tmp/results.duckdb`` and check
    that every one of its ``ok_trials`` trials came out ok. Returns the database path."""
    path = tmp / "spec.toml"
    path.write_text(spec, encoding="utf-8")
    db = tmp / "results.duckdb"
    proc = run_cli("runner", "trials", "-e", path, "--db", db, "--quiet", timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{ok_trials} ok trials, 0 failed" in proc.stdout
    return db
