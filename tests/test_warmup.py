"""The embedding model is loaded in the background at startup: /readyz says 503, with the
reason, until it is, while /healthz answers throughout."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.context
from service.api import create_app
from service.context import Newsdesk
from service.settings import Settings
from service.warmup import PROBE, Warmup
from tests.conftest import HashingEmbedder
from tests.hardening import wait_for
from vectorstore.config import EmbeddingConfig


class SlowModel:
    """Stands in for ``make_embedder`` loading a model: done when the test says so."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.loading = threading.Event()
        self.loads = 0

    def __call__(self, config: EmbeddingConfig) -> HashingEmbedder:
        self.loads += 1
        self.loading.set()
        assert self.release.wait(30), "the test never let the model load"
        return HashingEmbedder()


@pytest.fixture
def slow_model(monkeypatch: pytest.MonkeyPatch) -> SlowModel:
    model = SlowModel()
    monkeypatch.setattr(service.context, "make_embedder", model)
    return model


def test_readyz_is_503_until_the_model_is_loaded_and_healthz_is_200_throughout(
    settings: Settings, slow_model: SlowModel
) -> None:
    # No embedder given: the app's Newsdesk loads the model itself, as in production.
    app = create_app(newsdesk=Newsdesk(settings))
    with TestClient(app) as c:
        # Startup was not blocked by the load: the app answers while it runs.
        assert slow_model.loading.wait(10)
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not ready"
        assert body["checks"]["warmup"].startswith("warming up")
        assert body["reason"] == "warmup: warming up: loading the embedding model"
        assert body["checks"]["store"] == "ok"

        slow_model.release.set()
        assert wait_for(lambda: c.get("/readyz").status_code == 200, 10, 0.05)
        assert c.get("/readyz").json()["checks"]["warmup"] == "ok"
        assert c.get("/healthz").status_code == 200
        # The request after ready finds the model loaded: it was loaded once, at startup.
        assert c.post("/v1/articles", json={"text": "The ferry resumed."}).status_code == 201
    assert slow_model.loads == 1


def test_a_model_that_cannot_load_keeps_the_replica_out_with_the_reason(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(config: EmbeddingConfig) -> HashingEmbedder:
        raise OSError("model files missing")

    monkeypatch.setattr(service.context, "make_embedder", broken)
    with TestClient(create_app(newsdesk=Newsdesk(settings))) as c:
        assert wait_for(lambda: "failed" in c.get("/readyz").json()["checks"]["warmup"], 10)
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "model files missing" in r.json()["reason"]
        assert c.get("/healthz").status_code == 200


@pytest.mark.model
def test_warm_up_runs_the_real_model_once_before_the_first_request(
    real_embedder: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the production embedder the warm-up embeds a probe, so ONNX Runtime has run
    before the first question does."""
    calls: list[list[str]] = []
    embed = real_embedder.embed  # type: ignore[attr-defined]

    def counting(texts: list[str]) -> object:
        calls.append(texts)
        return embed(texts)

    monkeypatch.setattr(real_embedder, "embed", counting)
    s = Settings(_env_file=None, data_dir=tmp_path / "data", llm_base_url=None, llm_api_key=None)
    warmup = Warmup(lambda: Newsdesk(s, embedder=real_embedder))  # type: ignore[arg-type]
    assert warmup.status() == "not started"
    warmup.start()
    assert warmup.status(wait=120) == "ok"
    assert calls and calls[0] == [PROBE]
