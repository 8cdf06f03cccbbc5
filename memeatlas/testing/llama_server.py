"""Start and stop llama-cpp-python's OpenAI-compatible server for tests and benchmarks.

    proc, url = llama_server(Path("tiny.gguf"))   # 127.0.0.1, a free port
    ...
    stop(proc)                                     # by its process id

Needs `llama-cpp-python[server]` (see docs/servers.md for the cached-wheel install).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def llama_cpp_available() -> str | None:
    """None when llama-cpp-python's server can run here, else why not (a skip reason)."""
    try:
        import importlib.util

        for mod in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context",
                    "pydantic_settings", "gguf"):
            if importlib.util.find_spec(mod) is None:
                return (f"{mod} is not installed: the interop tests need llama-cpp-python[server] "
                        f"(bash scripts/setup.sh --dev installs a cached wheel from "
                        f"~/.cache/memeatlas/wheels; build one with scripts/build_llama_cpp.sh)")
    except (ImportError, ValueError) as exc:  # pragma: no cover
        return f"llama-cpp-python unusable: {exc}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_server(gguf: Path, port: int | None = None, *, n_ctx: int = 4096,
                 timeout: float = 60.0, log: Path | None = None, threads: int = 1
                 ) -> tuple[subprocess.Popen, str]:
    """Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1; (process, base URL).

    Waits (at most `timeout` s) until GET /v1/models answers; raises RuntimeError with the
    log's tail when the server exits or never answers.
    """
    import httpx

    port = port or free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--model_alias", "tiny-qwen2"]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded wait for the server to answer
        if proc.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {tail}")
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"llama_cpp.server did not answer on {url} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started by `llama_server`, by its process id (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
