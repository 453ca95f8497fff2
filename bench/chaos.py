"""Concurrent writers with SIGKILLs, at larger counts than CI runs them (``make chaos``).

Scenarios (tests/writers.py has the writers and the check):
- threads: writer threads in one process, repair on every call;
- processes: writer processes on one ``chroma run`` server, a random one SIGKILLed after
  every ``--kill-every`` acknowledgements and restarted where it stopped;
- api: HTTP clients of one API server on the embedded store, the server SIGKILLed and
  restarted by acknowledgement count;
- replicas: HTTP clients of two API replicas on one Chroma server, a random replica
  SIGKILLed and restarted by count;
- cli: ``newsdesk ingest --api`` next to a running server while HTTP clients write too.

After each, every acknowledged article must be stored whole, its chunks exact spans of
its text, and found by dense and by keyword search. Writes bench/results/chaos.json.

    python -m bench.chaos [--writers 4] [--per-writer 75] [--kill-every 25]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, emit, table
from tests.chroma_server import ChromaServer
from tests.hardening import child_env
from tests.writers import (
    ApiServer,
    check_acknowledged,
    open_newsdesk,
    record,
    server_env,
    write_in_processes,
    write_in_threads,
    write_through_api,
)


def _threads(work: Path, args: argparse.Namespace) -> tuple[dict[str, str], int, Any]:
    nd = open_newsdesk(work / "data", repair_interval_seconds=0.0)
    return write_in_threads(nd, args.writers, args.per_writer), 0, nd


def _processes(work: Path, args: argparse.Namespace) -> tuple[dict[str, str], int, Any]:
    chroma = ChromaServer(work / "chroma").start()
    try:
        env = child_env(
            NEWSDESK_CHROMA_HOST="127.0.0.1",
            NEWSDESK_CHROMA_PORT=str(chroma.port),
            NEWSDESK_DATA_DIR=str(work / "writers"),
            NEWSDESK_REPAIR_INTERVAL_SECONDS="0",
        )
        acked, kills = write_in_processes(env, args.writers, args.per_writer, args.kill_every)
        nd = open_newsdesk(work / "check", chroma.port)
        return acked, kills, (nd, chroma)
    except BaseException:
        chroma.stop()
        raise


def _api(work: Path, args: argparse.Namespace) -> tuple[dict[str, str], int, Any]:
    server = ApiServer(server_env(work / "data"), work / "server.log").start()
    try:
        acked, kills = write_through_api(
            [server], args.writers, args.per_writer, args.kill_every * 2
        )
    finally:
        server.stop()
    return acked, kills, open_newsdesk(work / "data")


def _replicas(work: Path, args: argparse.Namespace) -> tuple[dict[str, str], int, Any]:
    chroma = ChromaServer(work / "chroma").start()
    servers = [
        ApiServer(server_env(work / f"r{i}", chroma.port), work / f"r{i}.log").start()
        for i in range(2)
    ]
    try:
        acked, kills = write_through_api(
            servers, args.writers, args.per_writer, args.kill_every * 2
        )
    except BaseException:
        chroma.stop()
        raise
    finally:
        for server in servers:
            server.stop()
    return acked, kills, (open_newsdesk(work / "check", chroma.port), chroma)


def _cli(work: Path, args: argparse.Namespace) -> tuple[dict[str, str], int, Any]:
    inbox = work / "inbox"
    inbox.mkdir()
    files: dict[str, str] = {}
    for n in range(args.per_writer):
        body = record("cli", n)
        (inbox / f"{body['id']}.json").write_text(json.dumps(body), "utf-8")
        files[body["id"]] = body["text"]
    server = ApiServer(server_env(work / "data"), work / "server.log").start()
    try:
        result: dict[str, Any] = {}

        def run_cli() -> None:
            result["done"] = subprocess.run(
                [sys.executable, "-m", "service.cli", "ingest", "--api", server.url, "--json"]
                + [str(inbox)],
                cwd=ROOT,
                env=child_env(NEWSDESK_DATA_DIR=str(work / "data")),
                capture_output=True,
                text=True,
                timeout=1800,
            )

        cli = threading.Thread(target=run_cli)
        cli.start()
        # The clients' acknowledgements trigger the kills; the CLI rides them out by
        # sending again whatever got no answer.
        acked, kills = write_through_api(
            [server], max(1, args.writers // 2), args.per_writer * 2, args.kill_every
        )
        cli.join()
    finally:
        server.stop()
    done = result["done"]
    if done.returncode != 0:
        raise RuntimeError(f"newsdesk ingest --api failed: {done.stderr[-2000:]}")
    reported = json.loads(done.stdout)
    # A file whose answer was lost to a kill lands again as "unchanged".
    if reported["added"] + reported["unchanged"] != len(files) or reported["failed"]:
        raise RuntimeError(f"the CLI reported {reported} for {len(files)} files")
    return acked | files, kills, open_newsdesk(work / "data")


SCENARIOS: dict[str, Callable[[Path, argparse.Namespace], tuple[dict[str, str], int, Any]]] = {
    "threads": _threads,
    "processes": _processes,
    "api": _api,
    "replicas": _replicas,
    "cli": _cli,
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name in args.scenarios:
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as tmp:
            started = time.perf_counter()
            acked, kills, handle = SCENARIOS[name](Path(tmp), args)
            nd, chroma = handle if isinstance(handle, tuple) else (handle, None)
            try:
                verdict = check_acknowledged(nd, acked)
            finally:
                if chroma is not None:
                    chroma.stop()
            rows[name] = {
                "acknowledged": verdict.acknowledged,
                "present_and_searchable": verdict.present,
                "lost": verdict.lost,
                "kills": kills,
                "problems": verdict.problems[:20],
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(f"{name}: {rows[name]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--per-writer", type=int, default=75)
    parser.add_argument("--kill-every", type=int, default=25)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    args = parser.parse_args()
    rows = run(args)
    data = {
        "settings": {k: v for k, v in vars(args).items()},
        "scenarios": rows,
    }
    text = table(
        ["scenario", "acknowledged", "present + searchable", "lost", "SIGKILLs", "seconds"],
        [
            [n, r["acknowledged"], r["present_and_searchable"], r["lost"], r["kills"], r["seconds"]]
            for n, r in rows.items()
        ],
    )
    emit("chaos", data, text)
    if any(r["lost"] or r["problems"] for r in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
