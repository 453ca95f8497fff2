"""One Newsdesk replica for the scale-out test: ``uvicorn tests.replica_app:create --factory``.

Settings come from NEWSDESK_* variables as in production (NEWSDESK_CHROMA_HOST/PORT,
NEWSDESK_DATA_DIR...); only the embedder is the fast HashingEmbedder. For the test, the
header ``X-Replica-Retrieval-Mode: dense|keyword`` restricts retrieval to one ranking, so
a test can show that each of them, on its own, finds what another replica ingested.
"""

from __future__ import annotations

import contextvars
from typing import Any

from service.api import create_app
from service.context import Newsdesk
from service.settings import Settings
from tests.conftest import HashingEmbedder

MODE_HEADER = b"x-replica-retrieval-mode"
USED_HEADER = b"x-replica-retrieval-used"  # the modes searches really ran in, for the test
_mode: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "retrieval_mode", default=None
)


def create() -> Any:
    newsdesk = Newsdesk(Settings(), embedder=HashingEmbedder())  # type: ignore[arg-type]
    retriever = newsdesk.retriever
    search = retriever.search

    def search_in_mode(query: str, **kwargs: Any) -> Any:
        state = _mode.get()
        if state is not None:
            if state["want"]:
                kwargs["mode"] = state["want"]
            state["used"].append(kwargs.get("mode", "hybrid"))
        return search(query, **kwargs)

    retriever.search = search_in_mode  # type: ignore[method-assign]
    app = create_app(newsdesk=newsdesk)

    async def replica(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        value = dict(scope.get("headers") or []).get(MODE_HEADER, b"").decode()
        state: dict[str, Any] = {
            "want": value if value in ("dense", "keyword") else None,
            "used": [],
        }
        token = _mode.set(state)

        async def send_with_modes(message: Any) -> None:
            if message["type"] == "http.response.start":
                used = ",".join(state["used"]).encode()
                message["headers"] = [*message.get("headers", []), (USED_HEADER, used)]
            await send(message)

        try:
            await app(scope, receive, send_with_modes)
        finally:
            _mode.reset(token)

    return replica
