"""Startup warm-up: when `newsdesk serve` answers /healthz, when /readyz turns 200, and how
long the first /v1/ask takes after that, against the second (the real model, the seeds).
For comparison, runs that send the first question as soon as /healthz answers (what a
balancer trusting a /readyz that said ready at once would have sent) show what that
first request pays.

Each run starts a fresh server process on a store with the seeds ingested; the ONNX
export of the model is shared (``NEWSDESK_MODEL_DIR``), as it is in production after the
first start.

    python -m bench.warmup [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUESTIONS = [
    "How many people fled the Kursk region?",
    "How many Ukrainian troops were captured?",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data: Path, models: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env.update(
        NEWSDESK_DATA_DIR=str(data),
        NEWSDESK_MODEL_DIR=str(models),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
    )
    return env


def _until(check: Any, timeout: float = 180.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if check():
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError("the server did not get there in time")


def one_run(data: Path, models: Path, wait_ready: bool) -> dict[str, Any]:
    port = _port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=_env(data, models),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            healthy = _until(lambda: http.get("/healthz").status_code == 200)
            not_ready_seen = http.get("/readyz").status_code == 503
            ready = _until(lambda: http.get("/readyz").status_code == 200) if wait_ready else None
            times = []
            for question in QUESTIONS:
                t0 = time.perf_counter()
                r = http.post("/v1/ask", json={"question": question})
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "first_ask_sent": "after /readyz 200" if wait_ready else "at /healthz 200",
        "healthz_after_s": round(healthy - started, 2),
        "readyz_503_seen": not_ready_seen,
        "readyz_after_s": None if ready is None else round(ready - started, 2),
        "first_ask_ms": round(times[0] * 1000, 1),
        "second_ask_ms": round(times[1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, models = Path(tmp) / "data", Path(tmp) / "models"
        subprocess.run(
            [sys.executable, "-m", "service.cli", "ingest", "seeds", "--json"],
            cwd=ROOT,
            env=_env(data, models),
            check=True,
            capture_output=True,
        )
        runs = [one_run(data, models, wait) for _ in range(args.runs) for wait in (True, False)]
    summary = {
        mode: {
            key: statistics.median(r[key] for r in runs if r["first_ask_sent"] == mode)
            for key in ("healthz_after_s", "first_ask_ms", "second_ask_ms")
        }
        for mode in ("after /readyz 200", "at /healthz 200")
    }
    summary["after /readyz 200"]["readyz_after_s"] = statistics.median(
        r["readyz_after_s"] for r in runs if r["readyz_after_s"] is not None
    )
    result = {"runs": runs, "median": summary}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "warmup.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
