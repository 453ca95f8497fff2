"""A bounded soak on 127.0.0.1: thousands of /v1/ask and /v1/chat/completions requests
at 32 concurrent clients against the real service and the instant stub LLM, with
articles being ingested at the same time. Checks: zero 5xx, no lost ingests, resident
memory growth after warm-up under 10%.

    python -m bench.soak [--requests 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.service_overhead import RESULTS, ROOT, start_service
from bench.stub_llm import StubLLM
from service.context import Newsdesk
from service.settings import Settings
from vectorstore.ingest import read_paths

QUESTIONS = [
    "How many people fled the Kursk region?",
    "How many Ukrainian troops were captured?",
    "What did Putin say about a ceasefire?",
    "What is the safety zone Putin described?",
    "Who is Oleksandr Syrskyi?",
]


def rss_mb(proc: psutil.Process) -> float:
    total = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True))
    return total / 2**20


async def soak(url: str, pid: int, n_requests: int, concurrency: int) -> dict:
    proc = psutil.Process(pid)
    statuses: dict[str, int] = {}
    done = 0
    warm_rss: float | None = None
    rss_samples: list[tuple[int, float]] = []
    ingested: list[str] = []
    ingest_failures: list[str] = []
    stop_ingest = asyncio.Event()
    rng = random.Random(11)

    async def client_worker(client: httpx.AsyncClient, worker: int) -> None:
        nonlocal done, warm_rss
        while done < n_requests:
            done += 1
            i = done
            q = f"{rng.choice(QUESTIONS)} (request {i})"
            try:
                if i % 2:
                    r = await client.post("/v1/ask", json={"question": q})
                else:
                    r = await client.post(
                        "/v1/chat/completions",
                        json={
                            "model": "newsdesk",
                            "stream": i % 4 == 0,
                            "messages": [{"role": "user", "content": q}],
                        },
                    )
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1
            if i % 250 == 0:
                rss_samples.append((i, round(rss_mb(proc), 1)))
                if warm_rss is None and i >= n_requests // 10:
                    warm_rss = rss_samples[-1][1]

    async def ingest_worker(client: httpx.AsyncClient) -> None:
        n = 0
        while not stop_ingest.is_set():
            aid = f"soak-{n}"
            body = {
                "id": aid,
                "title": f"Soak report {n}",
                "source": "Soak Wire",
                "text": f"Soak report {n}: the harbour authority counted {100 + n} ships "
                f"on day {n}. Officials said traffic was normal.",
            }
            try:
                r = await client.post("/v1/articles", json=body)
                (ingested if r.status_code in (200, 201) else ingest_failures).append(aid)
            except httpx.HTTPError:
                ingest_failures.append(aid)
            n += 1
            await asyncio.sleep(0.25)

    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency + 4)
    ) as client:
        ingest_task = asyncio.create_task(ingest_worker(client))
        await asyncio.gather(*(client_worker(client, w) for w in range(concurrency)))
        stop_ingest.set()
        await ingest_task
        elapsed = time.perf_counter() - started
        lost = []
        for aid in ingested:
            r = await client.get(f"/v1/articles/{aid}")
            if r.status_code != 200:
                lost.append(aid)
        last = ingested[-1] if ingested else None
        found_last = False
        if last:
            r = await client.post(
                "/v1/ask",
                json={
                    "question": f"How many ships did the harbour authority count on day "
                    f"{last.split('-')[1]}?",
                    "filters": {"sources": ["Soak Wire"]},
                },
            )
            found_last = any(c["article_id"] == last for c in r.json().get("citations", []))
    final_rss = round(rss_mb(proc), 1)
    five_xx = sum(v for k, v in statuses.items() if k.startswith("5") or not k.isdigit())
    growth = (final_rss - warm_rss) / warm_rss if warm_rss else None
    return {
        "requests": sum(statuses.values()),
        "concurrency": concurrency,
        "seconds": round(elapsed, 1),
        "rps": round(sum(statuses.values()) / elapsed, 1),
        "statuses": statuses,
        "5xx_or_transport_errors": five_xx,
        "ingested": len(ingested),
        "ingest_failures": len(ingest_failures),
        "lost_ingests": len(lost),
        "last_ingest_answerable": found_last,
        "rss_mb_after_warmup": warm_rss,
        "rss_mb_final": final_rss,
        "rss_growth_after_warmup": round(growth, 4) if growth is not None else None,
        "rss_samples": rss_samples,
        "pass": five_xx == 0
        and not lost
        and not ingest_failures
        and growth is not None
        and growth < 0.10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Bounded soak test on 127.0.0.1")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsdesk-soak-") as tmp, StubLLM() as llm_url:
        data = Path(tmp)
        nd = Newsdesk(Settings(_env_file=None, data_dir=data))
        nd.indexer.index(read_paths([ROOT / "seeds"]))
        # The embedded store belongs to one process: hand it to the service.
        nd.store.close()
        proc = start_service(data, llm_url, 18900)
        try:
            result = asyncio.run(
                soak("http://127.0.0.1:18900", proc.pid, args.requests, args.concurrency)
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(json.dumps(result, indent=2))
    print("PASS" if result["pass"] else "FAIL")


if __name__ == "__main__":
    main()
