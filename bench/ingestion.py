"""Benchmark 4: ingestion throughput, and what raises embedding throughput.

Part A runs the real pipeline (``Newsdesk(settings).indexer.index(read_paths(...))``) on
the seed articles and on the Multi-News documents, each in its own subprocess so peak
RSS belongs to that run alone, into throwaway data dirs. It reports articles/s,
chunks/s and the split between embedding time (``report.embed_seconds``) and everything
else (reading, canonicalising, chunking, Chroma writes).

Part B times embedding variants of the same model on a fixed sample of production
chunks (180-token, sentence-aligned, from the Multi-News documents) and on single
MultiHop-RAG questions (what a search waits for): ONNX Runtime (production) against
torch at several batch sizes, with and without length sorting, and int8 quantised
torch and ONNX models. Variants run interleaved, repeat after repeat, so machine noise
hits them alike; medians and ratios to the production setting are quoted. Each
variant's vectors are compared with the production vectors, and every faster variant
whose vectors differ is re-scored on benchmark 1 (MultiHop-RAG hits@4) to show whether
retrieval quality holds.

    python -m bench.ingestion [--seeds DIR] [--multinews FILE] [--sample N] [--repeats N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, SHARED_EVAL, embedder, emit, quiet, rel, require_files, table


def production_name(base: Any) -> str:
    backend = "onnxruntime fp32" if base.backend == "onnx" else "torch"
    return f"{backend}, batch {base.batch_size} (production)"


# ---- part A: the real pipeline, one subprocess per data set ------------------------


class TimedEmbedder:
    """Wraps the embedder to record each call: (texts, seconds)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.calls: list[tuple[int, float]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.calls.append((len(texts), time.perf_counter() - t0))
        return out


def peak_rss_kib() -> int:
    """This process's own peak RSS. VmHWM starts afresh at exec; ru_maxrss does not (on
    Linux it keeps the parent's peak from before the fork, here a loaded model)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(paths: list[Path], repeats: int) -> dict[str, Any]:
    """Runs inside the subprocess: ingest ``paths`` ``repeats`` times into fresh stores."""
    import psutil

    from service.context import Newsdesk
    from service.settings import Settings
    from vectorstore.ingest import read_paths

    quiet()
    proc = psutil.Process()
    rss_start = proc.memory_info().rss
    t0 = time.perf_counter()
    inner = embedder()
    inner.embed(["warm-up: the first call pays for lazy initialisation."])
    load_seconds = time.perf_counter() - t0
    rss_model = proc.memory_info().rss
    runs = []
    for _ in range(repeats):
        emb = TimedEmbedder(inner)
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            nd = Newsdesk(Settings(data_dir=Path(tmp), chroma_host=None), embedder=emb)
            t1, c1 = time.perf_counter(), time.process_time()
            report = nd.indexer.index(read_paths(paths))
            wall, cpu = time.perf_counter() - t1, time.process_time() - c1
        runs.append(
            {
                "articles": report.added,
                "chunks": report.chunks,
                "failed": report.failed,
                "seconds": wall,
                "cpu_seconds": cpu,
                "embed_seconds": report.embed_seconds,
                "batches": [[n, round(s, 3)] for n, s in emb.calls],
            }
        )
    peak_kib = peak_rss_kib()
    return {
        "runs": runs,
        "model_load_seconds": round(load_seconds, 2),
        "rss_start_mib": round(rss_start / 2**20, 1),
        "rss_after_model_mib": round(rss_model / 2**20, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def pipeline(name: str, paths: list[Path], repeats: int) -> dict[str, Any]:
    """Ingest in a subprocess and summarise: medians over repeats, per-batch rates."""
    cmd = [sys.executable, "-m", "bench.ingestion", "--worker", "--repeats", str(repeats)]
    cmd += [str(p) for p in paths]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ingestion worker failed for {name}:\n{done.stderr[-3000:]}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    runs = raw.pop("runs")
    med = statistics.median
    seconds = med(r["seconds"] for r in runs)
    embed = med(r["embed_seconds"] for r in runs)
    articles, chunks = runs[0]["articles"], runs[0]["chunks"]
    # Per-batch embedding rates: with one long run these give the spread a median needs.
    batch_rates = [n / s for r in runs for n, s in r["batches"] if n >= 32 and s > 0]
    return {
        "inputs": [rel(p) for p in paths],
        "repeats": repeats,
        "articles": articles,
        "chunks": chunks,
        "failed": runs[0]["failed"],
        "seconds_median": round(seconds, 2),
        "seconds_all": [round(r["seconds"], 2) for r in runs],
        "cpu_seconds_median": round(med(r["cpu_seconds"] for r in runs), 2),
        "articles_per_s": round(articles / seconds, 2),
        "chunks_per_s": round(chunks / seconds, 2),
        "embed_seconds_median": round(embed, 2),
        "other_seconds_median": round(seconds - embed, 2),
        "embed_share": round(embed / seconds, 3) if seconds else None,
        "embed_chunks_per_s": round(chunks / embed, 2) if embed else None,
        "embed_batches": sum(len(r["batches"]) for r in runs),
        "embed_chunks_per_s_batch_median": round(med(batch_rates), 2) if batch_rates else None,
        **raw,
    }


def multinews_jsonl(path: Path, out: Path) -> Path:
    """Multi-News documents as ingestible records, one article each."""
    with out.open("w", encoding="utf-8") as f:
        for line in path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            for i, doc in enumerate(row["documents"]):
                f.write(json.dumps({"id": f"{row['id'][:12]}-{i}", "text": doc}) + "\n")
    return out


# ---- part B: embedding variants --------------------------------------------------------


def sample_chunks(path: Path, n: int, seed: int = 0) -> list[str]:
    from service.settings import Settings
    from vectorstore.canonical import canonicalize
    from vectorstore.chunk import chunk_text

    settings = Settings()
    texts = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for i, doc in enumerate(row["documents"]):
            text = canonicalize(doc)
            if text:
                chunks = chunk_text(
                    f"d{i}", text, settings.chunk_tokens, settings.chunk_overlap_sentences
                )
                texts += [c.text for c in chunks]
    rng = random.Random(seed)
    return rng.sample(texts, min(n, len(texts)))


class RawTorch:
    """The torch model's forward pass in batches in the given order (no length sorting)."""

    def __init__(self, ref: Any, model: Any = None, batch_size: int = 32, sort: bool = False):
        self.model_id = ref.model_id
        self.tokenizer = ref.tokenizer
        self.model = model if model is not None else ref.sentence_transformer[0].auto_model
        self.batch_size = batch_size
        self.sort = sort

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        order = list(range(len(texts)))
        if self.sort:
            order.sort(key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(vec, dim=-1).numpy()
        return out


class Batch:
    def __init__(self, inner: Any, batch_size: int) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        before = self.inner.batch_size
        self.inner.batch_size = self.batch_size
        try:
            return self.inner.embed(texts)
        finally:
            self.inner.batch_size = before


class Graph:
    """Another ONNX graph of the model (here: the int8 one) behind the embedder interface."""

    def __init__(self, ref: Any, path: Path, batch_size: int) -> None:
        from vectorstore.onnx_export import OnnxModel

        self.model_id = ref.model_id
        self.batch_size = batch_size
        self.model = OnnxModel(path, ref.tokenizer, ref.max_word_pieces, threads=ref.threads)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.embed(texts, self.batch_size)


def build_variants(base: Any, tmp: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """Every variant that can be built here, why the others can't, and build notes.

    ``base`` is the production embedder; the torch rows use a second, torch-backed copy
    of the same model (or ``base`` itself when production runs on torch).
    """
    import torch

    from vectorstore.embed import LocalEmbedder

    prod = base.batch_size
    production = production_name(base)
    variants: dict[str, Any] = {production: Batch(base, prod)}
    skipped: dict[str, str] = {}
    notes: dict[str, Any] = {}
    t0 = time.perf_counter()
    ref = base
    if base.backend != "torch":
        ref = LocalEmbedder(dataclasses.replace(base.config, batch_size=prod, backend="torch"))
    notes["torch_load_seconds"] = round(time.perf_counter() - t0, 2)
    for bs in (8, 16, 32):
        name = f"torch, batch {bs}"
        if not (base.backend == "torch" and bs == prod):
            variants[name] = Batch(ref, bs)
    # Our own loop over the model, to switch sentence-transformers' length sorting off;
    # compare these two rows with each other.
    variants[f"torch, batch {prod}, unsorted"] = RawTorch(ref, batch_size=prod, sort=False)
    variants[f"torch, batch {prod}, length-sorted"] = RawTorch(ref, batch_size=prod, sort=True)
    try:
        qmodel = torch.ao.quantization.quantize_dynamic(
            ref.sentence_transformer[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8
        )
        variants["torch dynamic int8 (torch.ao)"] = RawTorch(
            ref, qmodel, batch_size=prod, sort=True
        )
    except Exception as exc:  # API removed in some torch builds
        skipped["torch dynamic int8 (torch.ao)"] = f"{type(exc).__name__}: {exc}"
    onnx = base if base.backend == "onnx" else None
    if onnx is None:
        t0 = time.perf_counter()
        onnx = LocalEmbedder(
            dataclasses.replace(base.config, batch_size=prod, backend="onnx", cache_dir=tmp)
        )
        if onnx.backend != "onnx":
            skipped["onnxruntime fp32"] = "the ONNX export failed (see the log)"
            return variants, skipped, notes
        notes["onnx_export_seconds"] = round(time.perf_counter() - t0, 2)
        variants[f"onnxruntime fp32, batch {prod}"] = onnx
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" note
        qpath = tmp / "all-MiniLM-L6-v2.int8.onnx"
        t0 = time.perf_counter()
        quantize_dynamic(str(onnx.graph_path), str(qpath), weight_type=QuantType.QInt8)
        notes["onnx_quantize_seconds"] = round(time.perf_counter() - t0, 2)
        variants["onnxruntime int8 (dynamic quantisation)"] = Graph(onnx, qpath, prod)
    except Exception as exc:
        skipped["onnxruntime int8 (dynamic quantisation)"] = f"{type(exc).__name__}: {exc}"
    return variants, skipped, notes


def padding_share(base: Any, texts: list[str], batch_size: int, sort: bool) -> float:
    """Share of the word pieces fed to the model that are padding."""
    lengths = [
        len(ids) for ids in base.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    ]
    if sort:
        lengths.sort(reverse=True)
    real = sum(lengths)
    padded = sum(
        max(lengths[s : s + batch_size]) * len(lengths[s : s + batch_size])
        for s in range(0, len(lengths), batch_size)
    )
    return round(1 - real / padded, 4)


def sample_questions(queries: Path, n: int) -> list[str]:
    """Real questions (MultiHop-RAG), as the service embeds them: one at a time."""
    out = []
    for line in queries.read_text("utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line)["query"])
        if len(out) >= n:
            break
    return out


def per_question_ms(variants: dict[str, Any], questions: list[str], repeats: int) -> dict:
    """Median milliseconds to embed one question, each variant in turn per question."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for q in questions:
            for name, v in variants.items():
                t0 = time.perf_counter()
                v.embed([q])
                times[name].append((time.perf_counter() - t0) * 1000)
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def variants_experiment(
    multinews: Path,
    corpus: Path,
    queries: Path,
    sample: int,
    repeats: int,
    quality: bool = True,
    production_quality: dict[str, float] | None = None,
) -> dict[str, Any]:
    base = embedder()
    texts = sample_chunks(multinews, sample)
    questions = sample_questions(queries, 20)
    tokens = [len(ids) for ids in base.tokenizer(texts)["input_ids"]]
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        variants, skipped, notes = build_variants(base, Path(tmp))
        production = production_name(base)
        ref = variants[production].embed(texts)  # also warms the production path up
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        vectors: dict[str, np.ndarray] = {}
        for name, v in variants.items():  # warm-up: first call of a backend is slow
            vectors[name] = v.embed(texts[:4])
        for _ in range(repeats):
            for name, v in variants.items():
                t0, c0 = time.perf_counter(), time.process_time()
                vectors[name] = v.embed(texts)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        question_ms = per_question_ms(variants, questions, repeats)
        base_rate = len(texts) / statistics.median(times[production])
        base_cpu_rate = len(texts) / statistics.median(cpu[production])
        rows: dict[str, dict[str, Any]] = {}
        for name in variants:
            rate = len(texts) / statistics.median(times[name])
            cpu_rate = len(texts) / statistics.median(cpu[name])
            cos = (vectors[name] * ref).sum(axis=1)
            rows[name] = {
                "chunks_per_s_median": round(rate, 2),
                "ratio_to_production": round(rate / base_rate, 3),
                "chunks_per_cpu_s_median": round(cpu_rate, 2),
                "cpu_ratio_to_production": round(cpu_rate / base_cpu_rate, 3),
                "ms_per_question_median": question_ms[name],
                "seconds_all": [round(t, 3) for t in times[name]],
                "cpu_seconds_all": [round(t, 3) for t in cpu[name]],
                "max_abs_diff_vs_production": float(np.abs(vectors[name] - ref).max()),
                "min_cosine_vs_production": round(float(cos.min()), 6),
                "mean_cosine_vs_production": round(float(cos.mean()), 6),
            }
        if quality:
            from bench.retrieval import newsdesk_modes

            modes = {"hybrid": {"mode": "hybrid"}, "dense": {"mode": "dense", "diversity": False}}
            if production_quality:
                rows[production].update(production_quality)
            checked = [] if production_quality else [production]
            checked += [
                n
                for n, r in rows.items()
                if n != production
                and max(r["ratio_to_production"], r["cpu_ratio_to_production"]) > 1.05
                and r["max_abs_diff_vs_production"] > 1e-5
            ]
            for name in checked:
                got = newsdesk_modes(corpus, queries, variants[name], modes)
                rows[name]["retrieval_hybrid_hits@4"] = got["hybrid"]["hits@4"]
                rows[name]["retrieval_dense_hits@4"] = got["dense"]["hits@4"]
                rows[name]["retrieval_index_seconds"] = got["data"]["index_seconds"]
    return {
        "sample_chunks": len(texts),
        "sample_word_pieces_median": statistics.median(tokens),
        "sample_questions": len(questions),
        "repeats": repeats,
        "padding_share_production_batch": {
            "unsorted": padding_share(base, texts, base.batch_size, sort=False),
            "length_sorted": padding_share(base, texts, base.batch_size, sort=True),
        },
        "variants": rows,
        "skipped": skipped,
        "notes": notes
        | {
            "sentence_transformers_sorts": (
                "SentenceTransformer.encode sorts each call's texts by length, and so does "
                "the ONNX path, so every 'batch N' row is length-sorted"
            ),
            "quality_check": (
                "benchmark 1 hits@4 for production and for each variant >5% faster (wall or "
                "CPU) whose vectors differ from production by more than 1e-5; the others "
                "compute the same vectors, so the same rankings"
            ),
            "per_question": (
                "ms_per_question_median: one MultiHop-RAG question per call, as the service "
                "embeds a question; this is what /v1/ask waits for"
            ),
            "optimum": (
                "sentence-transformers' backend='onnx' needs optimum-onnx, whose releases "
                "require transformers<4.58, while sentence-transformers 6 requires "
                "transformers>=5: not installable together, so vectorstore/onnx_export.py "
                "exports with torch.onnx (TorchScript exporter) and runs onnxruntime directly"
            ),
        },
    }


# ---- entry points -------------------------------------------------------------------------


def run(
    args: argparse.Namespace, production_quality: dict[str, float] | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "ingestion", "pipeline": {}}
    result["pipeline"]["seeds"] = pipeline("seeds", [args.seeds], args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-multinews-") as tmp:
        docs = multinews_jsonl(args.multinews, Path(tmp) / "multinews_docs.jsonl")
        mn = pipeline("multinews", [docs], args.multinews_repeats)
    mn["inputs"] = [rel(args.multinews) + " (documents, one article each)"]
    result["pipeline"]["multinews"] = mn
    if args.sample > 0:
        result["embedding_variants"] = variants_experiment(
            args.multinews,
            args.corpus,
            args.queries,
            args.sample,
            args.repeats,
            args.quality,
            production_quality,
        )
    return result


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            p["articles"],
            p["chunks"],
            p["articles_per_s"],
            p["chunks_per_s"],
            p["embed_share"],
            p["embed_chunks_per_s"],
            p["peak_rss_mib"],
            p["repeats"],
        ]
        for name, p in result["pipeline"].items()
    ]
    out = "Ingestion through the real pipeline (medians over repeats)\n" + table(
        [
            "data",
            "articles",
            "chunks",
            "articles/s",
            "chunks/s",
            "embed share",
            "embed chunks/s",
            "peak RSS MiB",
            "repeats",
        ],
        rows,
    )
    ev = result.get("embedding_variants")
    if ev:
        vrows = [
            [
                name,
                v["chunks_per_s_median"],
                v["ratio_to_production"],
                v["cpu_ratio_to_production"],
                v["ms_per_question_median"],
                v["min_cosine_vs_production"],
                v.get("retrieval_hybrid_hits@4", ""),
                v.get("retrieval_dense_hits@4", ""),
            ]
            for name, v in ev["variants"].items()
        ]
        out += (
            f"\n\nEmbedding variants ({ev['sample_chunks']} chunks, median "
            f"{ev['sample_word_pieces_median']} word pieces, {ev['repeats']} interleaved repeats)\n"
            + table(
                [
                    "variant",
                    "chunks/s",
                    "x production (wall)",
                    "x production (CPU)",
                    "ms per question",
                    "min cos",
                    "hybrid hits@4",
                    "dense hits@4",
                ],
                vrows,
            )
        )
        for name, why in ev["skipped"].items():
            out += f"\nskipped {name}: {why}"
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ingestion", description=__doc__)
    p.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    p.add_argument("--multinews", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    p.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    p.add_argument("--queries", type=Path, default=SHARED_EVAL / "multihop_dev.jsonl")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats (seeds, variants)")
    p.add_argument(
        "--multinews-repeats",
        type=int,
        default=1,
        help="full Multi-News ingests (each ~3 min here; per-batch rates give the median)",
    )
    p.add_argument("--sample", type=int, default=64, help="chunks per variant timing; 0: skip")
    p.add_argument("--no-quality", dest="quality", action="store_false")
    p.add_argument("--out-dir", type=Path, default=None, help="default: bench/results")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(
    argv: list[str] | None = None,
    emb: Any | None = None,
    production_quality: dict[str, float] | None = None,
) -> dict[str, Any]:
    """``production_quality``: benchmark 1's hybrid/dense hits@4 with the production
    embedder, when the caller has just measured them (saves re-indexing the corpus)."""
    quiet()
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args.paths, args.repeats)))
        return {}
    require_files(args.multinews, *([args.corpus, args.queries] if args.quality else []))
    if emb is not None:
        import bench.common

        bench.common._EMBEDDER = emb
    result = run(args, production_quality)
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    emit("ingestion", result, render(result), **kwargs)
    return result


if __name__ == "__main__":
    main()
