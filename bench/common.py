"""Helpers shared by the benchmarks: paths, the one embedding model, tables, JSON output."""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The evaluation files sit beside the repository (../shared/eval) in this workplace; a
# clone elsewhere points NEWSDESK_BENCH_DATA at its copy.
SHARED_EVAL = Path(os.environ.get("NEWSDESK_BENCH_DATA") or ROOT.parent / "shared" / "eval")
RESULTS = ROOT / "bench" / "results"

_EMBEDDER: Any = None


def require_files(*paths: Path) -> None:
    """Stop with one readable line, before any work, when a data file is missing."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise SystemExit(
            f"benchmark data not found: {', '.join(missing)} (pass the file, or set "
            "NEWSDESK_BENCH_DATA to the folder with multihop_*.jsonl and multinews_dev.jsonl)"
        )


def quiet() -> None:
    """Silence library chatter (progress bars, deprecation notes) so tables stay readable."""
    warnings.filterwarnings("ignore")
    for name in ("chromadb", "sentence_transformers", "transformers", "httpx", "bm25s"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # transformers not imported yet or API moved: chatter only
        pass


def embedder() -> Any:
    """The one all-MiniLM-L6-v2 instance of this process (loading it takes seconds)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        quiet()
        from service.settings import Settings
        from vectorstore.embed import LocalEmbedder, make_embedder

        # The production configuration (NEWSDESK_EMBEDDING_* settings).
        local = Settings().model_copy(update={"embedding_provider": "local"})
        _EMBEDDER = make_embedder(local.embedding_config())
        assert isinstance(_EMBEDDER, LocalEmbedder)
        quiet()
    return _EMBEDDER


def rel(path: Path) -> str:
    """A path as the results should show it: relative to the repo root."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def write_result(name: str, data: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal as well)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
        return "" if v is None else str(v)

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def median_seconds(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, list[float], Any]:
    """Median wall time of ``repeats`` calls, every time, and the last call's result."""
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def emit(name: str, data: dict[str, Any], text: str, out_dir: Path = RESULTS) -> Path:
    """Print the JSON and the readable table, and write the JSON under bench/results/."""
    print(json.dumps(data, indent=2, ensure_ascii=False))
    print()
    print(text)
    path = write_result(name, data, out_dir)
    print(f"\nwrote {rel(path)}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_app(env: dict[str, str], port: int, wait_s: float = 120) -> subprocess.Popen[bytes]:
    """The real service under uvicorn on 127.0.0.1:``port``, returned once /healthz answers;
    one line and an exit when it dies or does not come up."""
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.api:create_app", "--factory"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit("the service exited during start-up")
    proc.kill()
    raise SystemExit(f"the service did not start within {wait_s:.0f} s")
