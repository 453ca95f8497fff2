"""Slack acknowledgement latency while the API is under a burst of summaries.

Slack retries an event, and shows the user an error for a slash command, when the HTTP
answer takes more than 3 s; apps that keep missing it get their events disabled. This
starts the real service (uvicorn, real HTTP) with the Slack routes mounted and Slack's
Web API pointed at a local stub (NEWSDESK_SLACK_API_URL), fires ``--burst`` simultaneous
``POST /v1/summaries``, and while they run sends signed Slack requests (an app_mention
event and an ``/ask`` command, alternately, every ``--every`` seconds), timing each
acknowledgement. The extractive engine answers (no LLM), so every summary is real CPU
work in the API's request threads. The store is the first ``--articles`` articles of the
MultiHop-RAG corpus, and each summary's topic is one of their titles (so none is refused
as off-topic, and each is real work).

    python -m bench.slack_ack [--burst 80] [--every 0.25] [--corpus FILE] [--articles 60]
                              [--label TEXT] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    RESULTS,
    SHARED_EVAL,
    emit,
    free_port,
    quiet,
    rel,
    require_files,
    serve_app,
    table,
)
from tests.slack_helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    SlackStub,
    command_body,
    event_body,
    mention,
    signature_headers,
)

ROOT = Path(__file__).resolve().parent.parent
ACK_LIMIT_S = 3.0  # Slack's
QUESTIONS = [
    "What did Apple say about the Google Search deal in court?",
    "Which company is the default search engine on practically every platform?",
    "What did the Justice Department focus on?",
]


def ingest(data_dir: Path, corpus: Path, n: int) -> list[str]:
    """Store the corpus's first ``n`` articles (real embeddings); their titles."""
    from service.context import Newsdesk
    from service.settings import Settings
    from vectorstore.ingest import read_paths

    lines = corpus.read_text("utf-8").splitlines()[:n]
    subset = data_dir / "articles.jsonl"
    subset.write_text("\n".join(lines) + "\n", "utf-8")
    settings = Settings(_env_file=None, data_dir=data_dir / "store")  # type: ignore[call-arg]
    nd = Newsdesk(settings)
    try:
        nd.indexer.index(read_paths([subset]))
    finally:
        nd.store.close()
    return [json.loads(line)["title"] for line in lines]


def start_service(data_dir: Path, slack_api_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env.update(
        {
            "NEWSDESK_DATA_DIR": str(data_dir),
            "NEWSDESK_SLACK_BOT_TOKEN": BOT_TOKEN,
            "NEWSDESK_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "NEWSDESK_SLACK_API_URL": slack_api_url,
            "NEWSDESK_RATE_LIMIT": "1000000/minute",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False",
        }
    )
    return serve_app(env, port, wait_s=180)


def slack_request(n: int, response_url: str) -> tuple[str, str, str, dict[str, str]]:
    """The n-th Slack request: (kind, path, body, headers), signed now, as Slack would."""
    question = QUESTIONS[n % len(QUESTIONS)]
    if n % 2 == 0:
        ts = f"1700000{n:03d}.000100"
        body = event_body(mention(question, ts=ts), event_id=f"Ev{n:06d}")
        content_type = "application/json"
        kind, path = "event", "/slack/events"
    else:
        body = command_body("/ask", question, response_url)
        content_type = "application/x-www-form-urlencoded"
        kind, path = "command", "/slack/commands"
    return kind, path, body, {"Content-Type": content_type, **signature_headers(body)}


async def send_slack(client: httpx.AsyncClient, n: int, response_url: str) -> dict[str, Any]:
    kind, path, body, headers = slack_request(n, response_url)
    started = time.perf_counter()
    try:
        r = await client.post(path, content=body, headers=headers)
        status = r.status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return {"kind": kind, "status": status, "seconds": time.perf_counter() - started}


async def unsigned(client: httpx.AsyncClient) -> dict[str, Any]:
    """An unsigned Slack request: refused with a 401 on the event loop itself, without a
    thread; its latency is what any request meets in this process under the burst."""
    started = time.perf_counter()
    try:
        r = await client.post("/slack/events", content=b"{}")
        status: int | str = r.status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return {"kind": "unsigned", "status": status, "seconds": time.perf_counter() - started}


async def summary(client: httpx.AsyncClient, topic: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        r = await client.post("/v1/summaries", json={"topic": topic})
        status: int | str = r.status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return {"status": status, "seconds": time.perf_counter() - started}


async def burst(
    base_url: str, topics: list[str], n_summaries: int, every: float, response_url: str
) -> dict:
    limits = httpx.Limits(max_connections=n_summaries + 50, max_keepalive_connections=0)
    timeout = httpx.Timeout(600.0)
    async with (
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as api,
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as slack,
    ):
        # Warm-up, not measured: the first summary loads the model and the sentence
        # vectors; the first Slack request makes bolt's one auth.test call.
        await summary(api, topics[-1])
        await send_slack(slack, 0, response_url)
        await send_slack(slack, 1, response_url)

        started = time.perf_counter()
        summaries = [
            asyncio.create_task(summary(api, topics[i % len(topics)])) for i in range(n_summaries)
        ]
        # On a clock, as Slack sends them: a slow ack does not hold back the next request.
        sent: list[asyncio.Task[dict[str, Any]]] = []
        probes: list[asyncio.Task[dict[str, Any]]] = []
        n = 2
        await asyncio.sleep(every)  # the burst is in the server's queues by now
        while not all(t.done() for t in summaries):
            sent.append(asyncio.create_task(send_slack(slack, n, response_url)))
            if n % 2 == 0:
                probes.append(asyncio.create_task(unsigned(slack)))
            n += 1
            await asyncio.sleep(every)
        acks = list(await asyncio.gather(*sent))
        floor = list(await asyncio.gather(*probes))
        done = [t.result() for t in summaries]
    return {
        "burst_seconds": time.perf_counter() - started,
        "summaries": done,
        "acks": acks,
        "unsigned": floor,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarise(raw: dict, label: str, n_summaries: int, every: float, articles: int) -> dict:
    acks = raw["acks"]
    seconds = [a["seconds"] for a in acks]
    summary_seconds = [s["seconds"] for s in raw["summaries"]]

    def ms(v: float) -> float:
        return round(v * 1000, 1)

    return {
        "label": label,
        "setup": {
            "burst": n_summaries,
            "slack_request_every_s": every,
            "articles": articles,
            "engine": "extractive",
            "cpus": os.cpu_count(),
        },
        "burst_seconds": round(raw["burst_seconds"], 1),
        "summaries": {
            "ok": sum(1 for s in raw["summaries"] if s["status"] == 200),
            "statuses": sorted({str(s["status"]) for s in raw["summaries"]}),
            "p50_s": round(statistics.median(summary_seconds), 2),
            "max_s": round(max(summary_seconds), 2),
        },
        "acks": {
            "n": len(acks),
            "statuses": sorted({str(a["status"]) for a in acks}),
            "p50_ms": ms(percentile(seconds, 50)),
            "p99_ms": ms(percentile(seconds, 99)),
            "max_ms": ms(max(seconds)) if seconds else None,
            "over_3s": sum(1 for s in seconds if s > ACK_LIMIT_S),
            "events_p99_ms": ms(
                percentile([a["seconds"] for a in acks if a["kind"] == "event"], 99)
            ),
            "commands_p99_ms": ms(
                percentile([a["seconds"] for a in acks if a["kind"] == "command"], 99)
            ),
        },
        # The same process's floor: a request answered on the event loop with no thread.
        "unsigned_401": {
            "n": len(raw["unsigned"]),
            "statuses": sorted({str(a["status"]) for a in raw["unsigned"]}),
            "p50_ms": ms(percentile([a["seconds"] for a in raw["unsigned"]], 50)),
            "p99_ms": ms(percentile([a["seconds"] for a in raw["unsigned"]], 99)),
        },
        "load_average_1m_after": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=80, help="simultaneous /v1/summaries")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between Slack requests")
    parser.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    parser.add_argument("--articles", type=int, default=60, help="articles to store")
    parser.add_argument("--label", default="Slack acks on their own threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "slack_ack.json")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="an earlier result of this bench (another build) to include for comparison",
    )
    args = parser.parse_args()
    require_files(args.corpus)
    quiet()

    stub = SlackStub().start()
    with tempfile.TemporaryDirectory(prefix="newsdesk-slack-ack-") as tmp:
        data_dir = Path(tmp)
        topics = ingest(data_dir, args.corpus, args.articles)
        port = free_port()
        proc = start_service(data_dir / "store", stub.api_url(), port)
        try:
            raw = asyncio.run(
                burst(
                    f"http://127.0.0.1:{port}",
                    topics,
                    args.burst,
                    args.every,
                    stub.response_url(),
                )
            )
        finally:
            proc.terminate()
            proc.wait(30)
            stub.stop()
    result = summarise(raw, args.label, args.burst, args.every, len(topics))
    result["setup"]["corpus"] = rel(args.corpus)
    result["slack_web_api_calls"] = len(stub.calls)
    runs = [result]
    if args.baseline:
        baseline = json.loads(args.baseline.read_text("utf-8"))
        baseline.pop("baseline", None)
        result["baseline"] = baseline
        runs.insert(0, baseline)
    rows = []
    for run in runs:
        a, floor = run["acks"], run["unsigned_401"]
        rows.append(
            [
                run["label"],
                a["n"],
                a["p50_ms"],
                a["p99_ms"],
                a["max_ms"],
                a["over_3s"],
                floor["p50_ms"],
                floor["p99_ms"],
                run["burst_seconds"],
                f"{run['summaries']['ok']}/{run['setup']['burst']}",
            ]
        )
    headers = ["run", "acks", "p50 ms", "p99 ms", "max ms", "over 3 s"]
    headers += ["401 p50 ms", "401 p99 ms", "burst s", "summaries ok"]
    text = table(headers, rows)
    out: Path = args.out
    emit(out.stem, result, text, out_dir=out.parent)


if __name__ == "__main__":
    main()
