"""Service overhead: /v1/ask latency and throughput of the real service (uvicorn) against
the instant stub LLM, over stores of about 1k, 10k and 50k chunks.

Store sizes are made with synthetic filler articles (real English words from the
MultiHop corpus, shuffled) with random unit vectors instead of model embeddings:
embedding 50k chunks would take ~50 minutes on this CPU, and the query path (real
query embedding, Chroma HNSW search, BM25, verification) does not care what the
vectors mean. The three seed articles are ingested for real.

    python -m bench.service_overhead [--corpus FILE] [--sizes 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from bench.common import SHARED_EVAL, require_files, serve_app
from bench.stub_llm import StubLLM
from service.context import Newsdesk
from service.settings import Settings
from vectorstore.chunk import chunk_text
from vectorstore.embed import make_embedder
from vectorstore.ingest import make_article, read_paths
from vectorstore.timing import parse_server_timing

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def vocabulary(corpus: Path, limit: int = 20000) -> list[str]:
    words: dict[str, None] = {}
    for line in corpus.read_text("utf-8").splitlines():
        for w in re.findall(r"[A-Za-z]{3,}", json.loads(line)["text"]):
            words.setdefault(w, None)
            if len(words) >= limit:
                return list(words)
    return list(words)


def filler_article(rng: random.Random, vocab: list[str], n: int) -> str:
    sentences = []
    for _ in range(60):
        words = rng.sample(vocab, rng.randint(10, 22))
        sentences.append(" ".join(words).capitalize() + ".")
    return f"Filler report {n}\n\n" + " ".join(sentences)


def grow_store(nd: Newsdesk, target_chunks: int, vocab: list[str], rng: random.Random) -> int:
    """Add filler articles (random vectors) until the store holds target_chunks chunks."""
    have = nd.store.count_chunks()
    n = nd.store.count_articles()
    batch: list = []
    while have < target_chunks:
        article = make_article(
            filler_article(rng, vocab, n),
            article_id=f"filler-{n}",
            source=rng.choice(["Filler Times", "Filler Post", "Filler Wire"]),
        )
        chunks = chunk_text(
            article.id,
            article.text,
            nd.settings.chunk_tokens,
            nd.settings.chunk_overlap_sentences,
        )
        vectors = np.asarray(
            [
                v / np.linalg.norm(v)
                for v in np.random.default_rng(n).normal(size=(len(chunks), 384))
            ],
            dtype=np.float32,
        )
        batch.append((article, chunks, vectors))
        have += len(chunks)
        n += 1
        if len(batch) >= 100:
            nd.store.write_articles(batch)
            batch = []
    nd.store.write_articles(batch)
    return nd.store.count_chunks()


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss
                rss += sum(c.memory_info().rss for c in self.proc.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                return
            time.sleep(0.2)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_service(data_dir: Path, llm_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NEWSDESK_DATA_DIR": str(data_dir),
        "NEWSDESK_LLM_BASE_URL": llm_url,
        "NEWSDESK_LLM_API_KEY": "stub",
        "NEWSDESK_RATE_LIMIT": "1000000/minute",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    return serve_app(env, port, wait_s=120)


def questions(vocab: list[str], rng: random.Random, n: int) -> list[str]:
    # Unique questions, so no cache (query vectors, sentence vectors) flatters the numbers.
    seeds = [
        "How many people fled the Kursk region?",
        "What did Putin say about a ceasefire?",
        "How many Ukrainian troops were captured?",
    ]
    out = []
    for i in range(n):
        a, b, c = rng.sample(vocab, 3)
        out.append(f"{seeds[i % 3]} ({a} {b} {c} #{i})")
    return out


async def load(url: str, qs: list[str], concurrency: int, path: str = "/v1/ask") -> dict:
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in qs:
        queue.put_nowait(q)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                q = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                r = await client.post(path, json={"question": q})
                status = str(r.status_code)
                took = parse_server_timing(r.headers.get("server-timing", ""))
                # What the client waited beyond the app: uvicorn, HTTP, this client.
                took["outside_app"] = (time.perf_counter() - t0) * 1000 - took.get("app", 0.0)
                for name, ms in took.items():
                    stages.setdefault(name, []).append(ms)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            if status != "200":
                errors[status] = errors.get(status, 0) + 1

    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 1)

    return {
        "concurrency": concurrency,
        "requests": len(ms),
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "rps": round(len(ms) / elapsed, 1),
        "errors": errors,
        # The service's own Server-Timing: medians per stage (llm and verify are parts of
        # engine; app is the whole request inside the service).
        "server_timing_p50_ms": {
            name: round(statistics.median(v), 2) for name, v in sorted(stages.items())
        },
    }


def stub_latency_ms(llm_url: str) -> float:
    body = {"model": "stub", "messages": [{"role": "user", "content": "x"}]}
    times = []
    with httpx.Client() as client:
        for _ in range(50):
            t0 = time.perf_counter()
            client.post(f"{llm_url}/chat/completions", json=body)
            times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def profile(pid: int, seconds: int, out: Path) -> list[dict]:
    """Where the service spends its time under one client (py-spy, sampled)."""
    raw = out.with_suffix(".raw")
    cmd = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "-p",
        str(pid),
        "-d",
        str(seconds),
        "-r",
        "100",
        "-f",
        "raw",
        "-o",
        str(raw),
        "--nonblocking",
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 30)
    except (OSError, subprocess.SubprocessError):
        return []
    totals: dict[str, int] = {}
    grand = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        grand += n
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0]
            where = frame.split(" (")[1].split(":")[0] if " (" in frame else ""
            if not any(
                k in where
                for k in (
                    "service/",
                    "vectorstore/",
                    "chromadb",
                    "torch",
                    "bm25s",
                    "sentence_transformers",
                    "openai",
                )
            ):
                continue
            key = f"{name} ({where.split('site-packages/')[-1]})"
            if key not in seen:
                seen.add(key)
                totals[key] = totals.get(key, 0) + n
    raw.unlink(missing_ok=True)
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:15]
    return [{"frame": k, "share": round(v / max(1, grand), 3)} for k, v in top]


def run(corpus: Path, sizes: list[int], requests: dict[int, int]) -> dict:
    rng = random.Random(7)
    vocab = vocabulary(corpus)
    results: dict = {
        "note": "filler articles with random vectors make up the store size; "
        "the LLM is bench/stub_llm.py (instant, not a model)",
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="newsdesk-overhead-") as tmp, StubLLM() as llm_url:
        data = Path(tmp)
        settings = Settings(_env_file=None, data_dir=data)
        embedder = make_embedder(settings.embedding_config())
        nd = Newsdesk(settings, embedder=embedder)
        nd.indexer.index(read_paths([ROOT / "seeds"]))
        results["stub_llm_ms"] = stub_latency_ms(llm_url)
        port = 18800
        for size in sizes:
            t0 = time.perf_counter()
            nd = Newsdesk(settings, embedder=embedder)
            chunks = grow_store(nd, size, vocab, rng)
            build_s = round(time.perf_counter() - t0, 1)
            # The embedded store belongs to one process: hand it to the service.
            nd.store.close()
            proc = start_service(data, llm_url, port)
            url = f"http://127.0.0.1:{port}"
            try:
                with RssSampler(proc.pid) as rss:
                    # warm-up: model load, BM25 build
                    asyncio.run(load(url, questions(vocab, rng, 5), 1))
                    row: dict = {"chunks": chunks, "build_seconds": build_s, "runs": []}
                    for c, n in requests.items():
                        row["runs"].append(asyncio.run(load(url, questions(vocab, rng, n), c)))
                    if size == sorted(sizes)[len(sizes) // 2]:
                        row["profile_one_client"] = profile_under_load(proc.pid, url, vocab, rng)
                row["peak_rss_mb"] = round(rss.peak / 2**20, 1)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
    return results


def profile_under_load(pid: int, url: str, vocab: list[str], rng: random.Random) -> list[dict]:
    """Profile the service for 8 s while one client keeps it busy."""
    holder: dict[str, list[dict]] = {}
    sampler = threading.Thread(
        target=lambda: holder.update(p=profile(pid, 8, RESULTS / "overhead_profile"))
    )
    sampler.start()
    asyncio.run(_timed_load(url, vocab, rng, 9))
    sampler.join()
    return holder.get("p", [])


async def _timed_load(url: str, vocab: list[str], rng: random.Random, seconds: float) -> None:
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        i = 0
        while time.monotonic() < end:
            await client.post("/v1/ask", json={"question": questions(vocab, rng, 1)[0] + str(i)})
            i += 1


def table(results: dict) -> str:
    lines = [
        "| chunks | clients | p50 ms | p95 ms | p99 ms | req/s | errors | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["sizes"]:
        for r in row["runs"]:
            lines.append(
                f"| {row['chunks']} | {r['concurrency']} | {r['p50_ms']} | "
                f"{r['p95_ms']} | {r['p99_ms']} | {r['rps']} | "
                f"{sum(r['errors'].values())} | {row['peak_rss_mb']} |"
            )
    return "\n".join(lines)


STAGES = ("embed", "dense", "keyword", "articles", "engine", "llm", "verify", "app")


def stages_table(results: dict) -> str:
    """Where one client's request goes (medians of the service's Server-Timing)."""
    lines = [
        "| chunks | p50 ms | " + " | ".join(STAGES) + " | outside app |",
        "|---:|---:|" + "---:|" * (len(STAGES) + 1),
    ]
    for row in results["sizes"]:
        r = next(r for r in row["runs"] if r["concurrency"] == 1)
        took = r.get("server_timing_p50_ms", {})
        cells = [str(took.get(name, "-")) for name in (*STAGES, "outside_app")]
        lines.append(f"| {row['chunks']} | {r['p50_ms']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


REQUESTS = {1: 150, 8: 120, 32: 240}


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")


def section(results: dict) -> str:
    return (
        "### Service overhead: /v1/ask through uvicorn, instant stub LLM "
        f"(stub's own median {results['stub_llm_ms']} ms)\n\n"
        + table(results)
        + "\n\nWhere one client's request goes (medians, ms; llm and verify are within engine)"
        + "\n\n"
        + stages_table(results)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Service overhead benchmark")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=SHARED_EVAL / "multihop_corpus.jsonl",
        help="JSONL with a 'text' field, used only for filler vocabulary",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--out", type=Path, default=RESULTS / "service_overhead.json")
    args = parser.parse_args()
    require_files(args.corpus)
    results = run(args.corpus, args.sizes, REQUESTS)
    write(results, args.out)
    print(json.dumps(results, indent=2))
    print(table(results))
    print(stages_table(results))


if __name__ == "__main__":
    main()
