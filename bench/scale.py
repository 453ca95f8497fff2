"""Scale: keyword, dense and hybrid search at 10k and 100k chunks (1M with --sizes) on a
Chroma server, the cost for a replica to apply one new article, how soon another process's
replica finds it, and the replica's memory. Also the measurement behind the keyword engine:
tantivy applying one article versus bm25s re-indexing the corpus (it has no incremental
add or delete).

The corpus is SYNTHETIC: pseudo-words drawn from a Zipf distribution (120 a chunk, 10
chunks an article) and vectors from hashing those words (384 dimensions, as
all-MiniLM-L6-v2), written straight into the Chroma server's collections in big batches,
with the same records and metadata ``ChromaStore.write_articles`` writes. Answer quality
is not measured here (bench/retrieval.py does that on real news); speed and memory are.

    python -m bench.scale [--sizes 10000 100000] [--queries 200] [--keep DIR]
    python -m bench.scale --remeasure --keep DIR [--sizes ...]   (apply, visibility, RSS)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, emit, quiet, table

DIM = 384
WORDS_PER_CHUNK = 120
CHUNKS_PER_ARTICLE = 10
VOCABULARY = 50_000
MODEL_ID = "synthetic-hash-384"
SOURCES = ["Reuters", "AP", "BBC", "Al Jazeera", "DW", "Le Monde", "NHK", "ABC"]
CLIENTS = (1, 8)
PROBES = 8  # writes whose visibility on another process's replica is timed


def _default_poll_seconds() -> float:
    from service.settings import Settings

    return float(Settings.model_fields["index_check_seconds"].default)


POLL_SECONDS = _default_poll_seconds()  # NEWSDESK_INDEX_CHECK_SECONDS's default
WRITE_BATCH = 2000


class HashEmbedder:
    """Vectors from hashed words: cheap, deterministic, and similar texts are near."""

    def __init__(self) -> None:
        self._dims: dict[str, int] = {}

    def _dim(self, word: str) -> int:
        dim = self._dims.get(word)
        if dim is None:
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            dim = self._dims[word] = int.from_bytes(digest, "big") % DIM
        return dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            np.add.at(out[row], [self._dim(w) for w in text.lower().split()], 1.0)
            out[row] /= np.linalg.norm(out[row]) or 1.0
        return out


class Corpus:
    """Zipf-distributed pseudo-words, the same for every run (seeded)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = self.rng.integers(4, 10, VOCABULARY)
        self.words = ["".join(self.rng.choice(letters, n)) + "o" for n in lengths]
        ranks = np.arange(1, VOCABULARY + 1)
        p = 1.0 / ranks**1.07
        self.cdf = np.cumsum(p / p.sum())

    def text(self, n_words: int) -> str:
        idx = np.searchsorted(self.cdf, self.rng.random(n_words))
        return " ".join(self.words[min(i, VOCABULARY - 1)] for i in idx) + "."

    def query(self) -> str:
        # Mid-frequency words, as a news question's content words are.
        idx = self.rng.integers(200, 5000, 5)
        return " ".join(self.words[i] for i in idx)


def _settings(port: int, prefix: str, data_dir: Path, poll: float = POLL_SECONDS) -> Any:
    from service.settings import Settings

    return Settings(
        _env_file=None,
        data_dir=data_dir,
        chroma_host="127.0.0.1",
        chroma_port=port,
        collection_prefix=prefix,
        llm_base_url=None,
        llm_api_key=None,
        index_check_seconds=poll,
    )


def _store(settings: Any) -> Any:
    from vectorstore.store import ChromaStore

    return ChromaStore(settings.store_config(), MODEL_ID, DIM)


def populate(store: Any, corpus: Corpus, n_chunks: int, emb: HashEmbedder) -> dict[str, Any]:
    """Write ``n_chunks`` synthetic chunks (and their articles) straight into Chroma."""
    from vectorstore.store import chunk_id

    started = time.perf_counter()
    n_articles = n_chunks // CHUNKS_PER_ARTICLE
    texts: list[str] = []
    ids, docs, metas, vecs = [], [], [], []
    a_ids, a_docs, a_metas, a_vecs = [], [], [], []
    chunk_texts: list[str] = []

    def flush(force: bool = False) -> None:
        if len(ids) >= WRITE_BATCH or (force and ids):
            store.chunks.add(ids=ids[:], documents=docs[:], metadatas=metas[:], embeddings=vecs[:])
            ids.clear(), docs.clear(), metas.clear(), vecs.clear()
        if len(a_ids) >= WRITE_BATCH // CHUNKS_PER_ARTICLE or (force and a_ids):
            store.articles.add(
                ids=a_ids[:], documents=a_docs[:], metadatas=a_metas[:], embeddings=a_vecs[:]
            )
            a_ids.clear(), a_docs.clear(), a_metas.clear(), a_vecs.clear()

    for a in range(n_articles):
        aid, version = f"syn{a:07d}", f"v{a:015d}"
        source = SOURCES[a % len(SOURCES)]
        day = 1 + a % 28
        published = f"2024-{1 + a % 12:02d}-{day:02d}T12:00:00+00:00"
        ts = int(time.mktime(time.strptime(published[:19], "%Y-%m-%dT%H:%M:%S")))
        chunk_texts = [corpus.text(WORDS_PER_CHUNK) for _ in range(CHUNKS_PER_ARTICLE)]
        vectors = emb.embed(chunk_texts)
        text, start = "", 0
        for i, (ct, vec) in enumerate(zip(chunk_texts, vectors, strict=True)):
            start = len(text) + (1 if text else 0)
            text = f"{text} {ct}" if text else ct
            ids.append(chunk_id(aid, version, i))
            docs.append(ct)
            vecs.append(vec)
            metas.append(
                {
                    "article_id": aid,
                    "version": version,
                    "index": i,
                    "start": start,
                    "end": start + len(ct),
                    "title": f"Synthetic {a}",
                    "source": source,
                    "published_at": published,
                    "published_ts": ts,
                    "written_at": time.time(),
                }
            )
        mean = vectors.mean(axis=0)
        a_ids.append(aid)
        a_docs.append(text)
        a_vecs.append(mean / (np.linalg.norm(mean) or 1.0))
        a_metas.append(
            {
                "title": f"Synthetic {a}",
                "source": source,
                "published_at": published,
                "published_ts": ts,
                "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                "chunks": CHUNKS_PER_ARTICLE,
                "version": version,
                "revision": 1,
            }
        )
        texts += chunk_texts
        flush()
    flush(force=True)
    store.bump_generation()
    return {"seconds": round(time.perf_counter() - started, 1), "texts": texts}


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(1000 * s[len(s) // 2], 2),
        "p95_ms": round(1000 * s[min(len(s) - 1, int(len(s) * 0.95))], 2),
        "n": len(s),
    }


def latency(fn: Callable[[str], Any], queries: list[str], clients: int) -> dict[str, float]:
    """Each query timed on its own, ``clients`` threads issuing them at once."""
    times: list[float] = []
    lock = threading.Lock()

    def one(q: str) -> None:
        t = time.perf_counter()
        fn(q)
        dt = time.perf_counter() - t
        with lock:
            times.append(dt)

    for q in queries[:5]:
        fn(q)  # warm caches
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, queries))
    return _percentiles(times)


def _rss_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def one_article(corpus: Corpus, key: str) -> Any:
    from vectorstore.ingest import make_article

    body = " ".join(corpus.text(WORDS_PER_CHUNK) for _ in range(CHUNKS_PER_ARTICLE))
    return make_article(f"{key} {body}", article_id=f"new-{key}", source="Reuters")


def write_one(store: Any, corpus: Corpus, emb: HashEmbedder, key: str) -> None:
    from vectorstore.chunk import chunk_text

    article = one_article(corpus, key)
    chunks = chunk_text(article.id, article.text, max_tokens=180, overlap_sentences=1)
    store.write_articles([(article, chunks, emb.embed([c.text for c in chunks]))])


# ---- the other process: a replica that reports what it sees -------------------------------


def replica_main(port: int, prefix: str, data_dir: Path) -> None:
    """Builds its own keyword index from the store, then answers ``find WORD`` with the
    wall-clock time its background poller made WORD findable."""
    quiet()

    settings = _settings(port, prefix, data_dir)
    nd = _replica_context(settings, _store(settings))
    started = time.perf_counter()
    nd.keyword.ensure_current()
    print(json.dumps({"built_s": round(time.perf_counter() - started, 2), **_rss_mb()}), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "find":
            while not nd.keyword.search(args[0], 1):
                time.sleep(0.005)
            print(json.dumps({"found_at": time.time()}), flush=True)
        elif command == "rss":
            print(json.dumps(_rss_mb()), flush=True)
        elif command == "quit":
            return


def _replica_process(port: int, prefix: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--replica",
            f"{port} {prefix} {data_dir}",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _ask(proc: subprocess.Popen[str], line: str | None = None) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    if line is not None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    while True:
        out = proc.stdout.readline()
        if not out:
            raise RuntimeError(f"replica process exited with {proc.poll()}")
        if out.startswith("{"):
            return json.loads(out)


# ---- one size -------------------------------------------------------------------------


def measure(port: int, work: Path, n_chunks: int, n_queries: int) -> dict[str, Any]:

    corpus, emb = Corpus(seed=n_chunks), HashEmbedder()
    prefix = f"scale{n_chunks}"
    # No poller here: this process applies the log itself, to time each apply.
    settings = _settings(port, prefix, work / f"main{n_chunks}", poll=3600.0)
    store = _store(settings)
    print(f"[{n_chunks}] writing synthetic chunks ...", flush=True)
    written = populate(store, corpus, n_chunks, emb)
    texts = written.pop("texts")
    print(f"[{n_chunks}] written in {written['seconds']} s; building the keyword index", flush=True)

    nd = _replica_context(settings, store)
    t = time.perf_counter()
    nd.keyword.ensure_current()
    build_s = time.perf_counter() - t
    queries = [corpus.query() for _ in range(n_queries)]
    search: dict[str, Any] = {}
    for mode in ("keyword", "dense", "hybrid"):
        for clients in CLIENTS:
            search[f"{mode}_{clients}"] = latency(
                lambda q, m=mode: nd.retriever.search(q, top_k=5, mode=m), queries, clients
            )
            print(f"[{n_chunks}] {mode} x{clients}: {search[f'{mode}_{clients}']}", flush=True)

    apply_ms = apply_costs(nd, store, corpus, emb, tag=str(n_chunks))

    # While it applies, searches keep answering from the last snapshot.
    during: list[float] = []
    stop = threading.Event()

    def searching() -> None:
        while not stop.is_set():
            for q in queries[:20]:
                t0 = time.perf_counter()
                nd.keyword.search(q, 30)
                during.append(time.perf_counter() - t0)

    th = threading.Thread(target=searching)
    th.start()
    for i in range(5):
        write_one(store, corpus, emb, f"duringprobe{i}x")
        nd.keyword.catch_up()
    stop.set()
    th.join()

    seen = visibility(port, prefix, work, store, corpus, emb, tag=str(n_chunks))

    # The engine choice: bm25s re-indexing this corpus, which it does for any change.
    bm25s_s = _bm25s_reindex_seconds(texts)
    return {
        "chunks": n_chunks,
        "articles": n_chunks // CHUNKS_PER_ARTICLE,
        "write_seconds": written["seconds"],
        "keyword_build_seconds": round(build_s, 2),
        "search": search,
        "apply_one_article_ms": apply_ms,
        "keyword_search_during_applies": _percentiles(during) | {"max_ms": _max_ms(during)},
        **seen,
        "bm25s_reindex_seconds": round(bm25s_s, 2),
    }


def apply_costs(nd: Any, store: Any, corpus: Corpus, emb: HashEmbedder, tag: str) -> dict:
    """Applying one new article on a replica: the poller's work after a write elsewhere."""
    applies = []
    for i in range(7):
        write_one(store, corpus, emb, f"applyprobe{tag}n{i}x")
        t = time.perf_counter()
        changed = nd.keyword.catch_up()
        applies.append(time.perf_counter() - t)
        assert changed >= 1
    ms = sorted(1000 * a for a in applies)
    return {
        "p50": round(ms[len(ms) // 2], 1),
        "max": round(ms[-1], 1),
        "all": [round(a, 1) for a in ms],
    }


def visibility(
    port: int, prefix: str, work: Path, store: Any, corpus: Corpus, emb: HashEmbedder, tag: str
) -> dict[str, Any]:
    """Another process's replica (its own keyword index, polling the change log every
    POLL_SECONDS): how soon it finds what this process writes, and its memory."""
    replica = _replica_process(port, prefix, work / f"replica{tag}")
    ready = _ask(replica)
    seen = []
    for i in range(PROBES):
        word = f"visibleprobe{tag}n{i}x"
        assert replica.stdin is not None
        replica.stdin.write(f"find {word}\n")
        replica.stdin.flush()
        # Its search loop is running before the write starts; the pause varies so the
        # writes land at different points of the replica's polling cycle.
        time.sleep(0.3 + (i % 4) * POLL_SECONDS / 4)
        write_one(store, corpus, emb, word)
        written_at = time.time()
        seen.append(_ask(replica)["found_at"] - written_at)
    rss = _ask(replica, "rss")
    _ask_quit(replica)
    return {
        "other_process_finds_write_s": {
            "median": round(statistics.median(seen), 2),
            "max": round(max(seen), 2),
            "all": [round(s, 2) for s in seen],
            "poll_seconds": POLL_SECONDS,
        },
        "replica_process": {
            "keyword_build_seconds": ready["built_s"],
            "rss_mb_after_build": ready.get("VmRSS"),
            "rss_mb_after_searches": rss.get("VmRSS"),
            "peak_rss_mb": rss.get("VmHWM"),
        },
    }


def _replica_context(settings: Any, store: Any) -> Any:
    from service.context import Newsdesk

    nd = Newsdesk(settings, embedder=HashEmbedder())  # type: ignore[arg-type]
    nd.__dict__["store"] = store  # the synthetic vectors' model id
    return nd


def remeasure(port: int, work: Path, sizes: Sequence[int], out: Path) -> dict[str, Any]:
    """Re-measure the apply cost, the replica's visibility and its memory on the corpora
    an earlier ``--keep`` run left, and update those fields of its results."""
    data = json.loads((out / "scale.json").read_text("utf-8"))
    rows = {r["chunks"]: r for r in data["sizes"]}
    stamp = int(time.time())  # this run's probe words were never written before
    for n in sizes:
        settings = _settings(port, f"scale{n}", work / f"main{n}", poll=3600.0)
        store = _store(settings)
        nd = _replica_context(settings, store)
        build_started = time.perf_counter()
        nd.keyword.ensure_current()
        print(f"[{n}] keyword index built in {time.perf_counter() - build_started:.0f} s")
        emb = HashEmbedder()
        rows[n]["apply_one_article_ms"] = apply_costs(
            nd, store, Corpus(seed=n + 2), emb, tag=f"{n}a{stamp}"
        )
        got = visibility(
            port, f"scale{n}", work, store, Corpus(seed=n + 1), emb, tag=f"{n}v{stamp}"
        )
        print(f"[{n}] {got}", flush=True)
        rows[n].update(
            got, apply_and_visibility_remeasured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        )
    data["setup"]["poll_seconds"] = POLL_SECONDS
    return data


def _max_ms(samples: list[float]) -> float:
    return round(1000 * max(samples), 2) if samples else 0.0


def _ask_quit(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(60)


def _bm25s_reindex_seconds(texts: list[str]) -> float:
    import bm25s
    import Stemmer

    t = time.perf_counter()
    tokens = bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False
    )
    bm25s.BM25().index(tokens, show_progress=False)
    return time.perf_counter() - t


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=200, help="queries per mode and client count")
    p.add_argument("--out-dir", type=Path, default=None, help="default: bench/results")
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="work in this folder and keep it (its chroma/ serves --remeasure later)",
    )
    p.add_argument(
        "--remeasure",
        action="store_true",
        help="with --keep DIR of an earlier run: re-measure only the apply cost, how soon "
        "another process's replica finds a write, and its memory; update them in scale.json",
    )
    p.add_argument("--replica", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.replica:
        port, prefix, data_dir = args.replica.split(" ", 2)
        replica_main(int(port), prefix, Path(data_dir))
        return {}
    quiet()
    from tests.chroma_server import ChromaServer

    out = args.out_dir or ROOT / "bench" / "results"
    if args.remeasure and not (args.keep and (args.keep / "chroma").is_dir()):
        raise SystemExit("--remeasure needs --keep DIR holding an earlier run's chroma/")
    results = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = args.keep
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsdesk-scale-")))
        # A kept 1M-chunk store takes a while to open.
        server = ChromaServer(work / "chroma").start(timeout=600)
        try:
            if args.remeasure:
                data = remeasure(server.port, work, args.sizes, out)
            else:
                for n in args.sizes:
                    results.append(measure(server.port, work, n, args.queries))
        finally:
            server.stop()
    if args.remeasure:
        results = data["sizes"]
    else:
        data = {
            "benchmark": "scale",
            "data": "SYNTHETIC: Zipf pseudo-words, 120 a chunk, 10 chunks an article; vectors "
            "hashed from the words (384-d); written straight into a Chroma server",
            "machine": f"{os.cpu_count()} CPUs, shared with other work while it ran",
            "setup": {
                "top_k": 5,
                "poll_seconds": POLL_SECONDS,
                "clients": list(CLIENTS),
                "queries_per_cell": args.queries,
                "keyword_engine": "tantivy (per-replica index fed by the store's change log)",
            },
            "sizes": results,
        }
    rows = []
    for r in results:
        s = r["search"]
        rows.append(
            [
                r["chunks"],
                *(
                    f"{s[f'{m}_{c}']['p50_ms']} / {s[f'{m}_{c}']['p95_ms']}"
                    for m in ("keyword", "dense", "hybrid")
                    for c in CLIENTS
                ),
                r["apply_one_article_ms"]["p50"],
                r["other_process_finds_write_s"]["median"],
                r["replica_process"]["rss_mb_after_searches"],
                r["bm25s_reindex_seconds"],
            ]
        )
    text = "Scale (synthetic corpus on a Chroma server; p50 / p95 ms)\n" + table(
        [
            "chunks",
            "keyword x1",
            "keyword x8",
            "dense x1",
            "dense x8",
            "hybrid x1",
            "hybrid x8",
            "apply 1 article ms",
            "found by other process s",
            "replica RSS MB",
            "bm25s re-index s",
        ],
        rows,
    )
    emit("scale", data, text, out)
    return data


if __name__ == "__main__":
    main()
