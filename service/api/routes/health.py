"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service.api.deps import MetricsDep, NewsdeskDep, require_key
from service.api.errors import ErrorBody
from vectorstore.store import StoreError

router = APIRouter(tags=["operations"])
# A load balancer that polls right after startup gets the answer once a fast warm-up (a
# model already in memory) is done, rather than a 503 it would then act on.
WARMUP_WAIT_SECONDS = 0.5


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
    reason: str | None = None


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Warmed up (embedding model and keyword index loaded), and the store (and the "
    "LLM, if configured) can be reached",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; the checks say why"}},
)
def readyz(newsdesk: NewsdeskDep, request: Request) -> JSONResponse:
    checks: dict[str, str] = {"warmup": request.app.state.warmup.status(WARMUP_WAIT_SECONDS)}
    try:
        checks["store"] = "ok" if newsdesk.store.heartbeat() else "unreachable"
    except StoreError as exc:
        checks["store"] = f"unreachable: {exc}"
    llm = newsdesk.llm
    checks["llm"] = "not configured" if llm is None else ("ok" if llm.ping() else "unreachable")
    llm_ok = checks["llm"] in ("ok", "not configured")
    # With the extractive fallback an unreachable LLM degrades answers but doesn't stop
    # them, so the replica should stay in the load balancer.
    fallback = newsdesk.settings.llm_fallback == "extractive"
    ready = checks["warmup"] == "ok" and checks["store"] == "ok" and (llm_ok or fallback)
    status = "ready" if ready and llm_ok else ("degraded" if ready else "not ready")
    body: dict[str, object] = {"status": status, "checks": checks}
    if not ready:
        body["reason"] = next(
            f"{name}: {value}"
            for name, value in checks.items()
            if value not in ("ok", "not configured")
        )
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (needs the key when NEWSDESK_API_KEYS is set)",
    response_class=Response,
    dependencies=[Depends(require_key)],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}},
        **{code: {"model": ErrorBody} for code in (401, 429)},
    },
)
def metrics(m: MetricsDep) -> Response:
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
