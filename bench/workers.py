"""Ingestion throughput on the queue with 1 and with 2 workers, and memory per process.

Each run starts a fresh deployment with ``scripts/cluster.sh`` (Redis, a Chroma server,
one API replica, M ``newsdesk worker``s with the real model), posts the same upload of
Multi-News source articles (real news text) to ``POST /v1/jobs`` as ``--jobs`` jobs (one
job runs on one worker, so a bulk load is split to spread), and times from the first
POST until every job is done. RSS (now and peak, from /proc) is read from each worker and
replica at the end. On a 2-core machine shared with other work a second worker mostly
shows that the queue spreads the jobs, not a 2x speed-up: both workers embed on the same
cores. Runs alternate 1 and 2 workers.

    python -m bench.workers [--articles 60] [--jobs 6] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import SHARED_EVAL, require_files, write_result

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "cluster.sh"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def articles(data: Path, n: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for line in data.read_text("utf-8").splitlines():
        for doc in json.loads(line)["documents"]:
            if doc.strip() and len(out) < n:
                out.append({"id": f"mn-{len(out):04d}", "source": "Multi-News", "text": doc})
    return out


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def one_run(items: list[dict[str, str]], workers: int, jobs: int, models: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="newsdesk-bench-workers-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")} | {
            "CLUSTER_DIR": tmp,
            "REPLICAS": "1",
            "WORKERS": str(workers),
            "API_PORTS": str(port),
            "CHROMA_PORT": str(free_port()),
            "REDIS_PORT": str(free_port()),
            "NEWSDESK_MODEL_DIR": str(models),
            "NEWSDESK_RATE_LIMIT": "100000/minute",
        }
        subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=600)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                size = -(-len(items) // jobs)
                started = time.perf_counter()
                ids = []
                for i in range(0, len(items), size):
                    r = http.post("/v1/jobs", json=items[i : i + size])
                    r.raise_for_status()
                    ids.append(r.json()["id"])
                states: dict[str, dict[str, Any]] = {}
                while len(states) < len(ids):
                    for job_id in ids:
                        if job_id not in states:
                            state = http.get(f"/v1/jobs/{job_id}").json()
                            if state["state"] in ("done", "failed"):
                                states[job_id] = state
                    time.sleep(0.2)
                seconds = time.perf_counter() - started
            pids = {p.stem: int(p.read_text()) for p in (Path(tmp) / "pids").glob("*.pid")}
            memory = {
                name: rss_mb(pid)
                for name, pid in sorted(pids.items())
                if name[:6] in ("worker", "replic")
            }
            ran_on = {}
            for log in sorted((Path(tmp) / "logs").glob("worker-*.log")):
                ran_on[log.stem] = log.read_text(errors="replace").count('"msg": "ingest job ')
        finally:
            subprocess.run([str(SCRIPT), "stop"], env=env, timeout=300)
    chunks = sum(s["chunks"]["written"] for s in states.values())
    failed = [s["id"] for s in states.values() if s["state"] != "done"]
    return {
        "workers": workers,
        "jobs": len(ids),
        "articles": len(items),
        "chunks": chunks,
        "failed_jobs": failed,
        "seconds": round(seconds, 1),
        "chunks_per_second": round(chunks / seconds, 2),
        "articles_per_second": round(len(items) / seconds, 2),
        "jobs_per_worker": ran_on,
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    require_files(args.data)
    items = articles(args.data, args.articles)
    models = Path(tempfile.mkdtemp(prefix="newsdesk-models-"))
    # Export the ONNX graph once here: the first worker of the first run would otherwise
    # export it (loading torch to do so) and weigh more than every other worker.
    from service.context import Newsdesk
    from service.settings import Settings

    Newsdesk(Settings(_env_file=None, data_dir=models, model_dir=models)).embedder()
    runs = []
    for _ in range(args.runs):
        for workers in (1, 2):
            runs.append(one_run(items, workers, args.jobs, models))
            print(json.dumps(runs[-1]))
    median = {
        w: {
            k: round(statistics.median(r[k] for r in runs if r["workers"] == w), 2)
            for k in ("seconds", "chunks_per_second", "articles_per_second")
        }
        for w in (1, 2)
    }
    worker_rss = [
        m["rss_mb"] for r in runs for n, m in r["memory"].items() if n.startswith("worker")
    ]
    replica_rss = [
        m["rss_mb"] for r in runs for n, m in r["memory"].items() if n.startswith("replica")
    ]
    result = {
        "what": "bulk jobs through RQ: same upload, 1 vs 2 `newsdesk worker`s, one API replica",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "2 shared cores: the second worker embeds on the same cores as the first, so "
        "it shows the queue spreading jobs more than a speed-up",
        "runs": runs,
        "median": median,
        "rss_mb": {
            "worker_median": round(statistics.median(worker_rss), 1),
            "replica_median": round(statistics.median(replica_rss), 1),
        },
    }
    path = write_result("workers", result)
    print(json.dumps({"median": median, "rss_mb": result["rss_mb"]}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
