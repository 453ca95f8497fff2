"""LangChain without losing the citations.

``NewsdeskRetriever`` is a langchain-core ``BaseRetriever`` over Newsdesk's hybrid search:
each ``Document`` is one passage, ``page_content`` the exact text of an article span and
its metadata the span (``article_id``, ``start``, ``end``) with ``title``, ``source`` (the
outlet), ``published_at`` and ``score``. ``ChatNewsdesk`` is a chat model whose
``AIMessage`` is a Newsdesk answer: ``content`` the answer with its ``[n]`` markers,
``response_metadata["citations"]`` the verified spans they point to.

Both talk to a running server (``base_url``, with ``api_key`` when keys are set: POST
/v1/search and POST /v1/ask) or, given ``newsdesk``, to a store opened in this process.
Through the server is the way beside ``newsdesk serve``: the embedded store belongs to one
process.

LangChain's ``ChatOpenAI`` pointed at /v1/chat/completions answers too, but langchain-openai
keeps only the fields OpenAI defines and drops our ``citations``; ``ChatNewsdesk`` is the
way to keep them.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever
from pydantic import BaseModel, ConfigDict, Field, SecretStr, SkipValidation

from service.answer import AnswerService
from service.context import Newsdesk
from service.models import Answer
from service.requests import AskBody, SearchBody, parse_request
from service.search import SearchHit, search

__all__ = ["ChatNewsdesk", "NewsdeskAPIError", "NewsdeskRetriever"]


class NewsdeskAPIError(RuntimeError):
    """The server refused or failed a request; ``code`` is the API's stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _Response(Protocol):
    @property
    def is_error(self) -> bool: ...
    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


# httpx.Client's post(), which other clients built on httpx's API share (Starlette's
# TestClient among them).
class _HTTPClient(Protocol):
    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> _Response: ...


class _NewsdeskClient(BaseModel):
    """Where requests go: a server, or a Newsdesk in this process."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str | None = Field(
        default=None, description="The Newsdesk API, e.g. http://127.0.0.1:8000."
    )
    api_key: SecretStr | None = Field(default=None, description="When NEWSDESK_API_KEYS is set.")
    newsdesk: Newsdesk | None = Field(
        default=None, description="A store opened in this process, instead of base_url."
    )
    http_client: SkipValidation[_HTTPClient] | None = Field(
        default=None,
        description="An httpx.Client (or one with its post()) to send requests with; "
        "default: a new one per request.",
    )
    timeout: float = Field(
        default=120.0, description="Seconds to wait for the server (without http_client)."
    )
    filters: dict[str, Any] | None = Field(
        default=None,
        description="The API's filters: article_ids, sources, published_after, published_before.",
    )

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        if not self.base_url:
            raise ValueError("set base_url (a running Newsdesk server) or newsdesk")
        url = self.base_url.rstrip("/") + path
        headers: dict[str, str] = {}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        if self.http_client is not None:
            # A client of one's own comes with its own timeouts.
            response = self.http_client.post(url, json=body, headers=headers)
        else:
            with httpx.Client(timeout=self.timeout) as client:
                response = client.post(url, json=body, headers=headers)
        if response.is_error:
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", response.text[:500]
            raise NewsdeskAPIError(response.status_code, code, message)
        return response.json()


class NewsdeskRetriever(_NewsdeskClient, BaseRetriever):
    """Passages from Newsdesk's hybrid search (dense + BM25), each an exact article span.

    ``retriever.invoke("How many people fled Kursk?")`` returns ``Document``s whose
    ``page_content`` equals ``canonical_text[start:end]`` of article ``article_id``."""

    top_k: int = Field(default=5, description="Passages per query (1 to 100).")
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        fields = {"query": query, "top_k": self.top_k, "mode": self.mode, "filters": self.filters}
        if self.newsdesk is not None:
            hits = search(self.newsdesk, parse_request(SearchBody, **fields))
        else:
            rows = self._post("/v1/search", {k: v for k, v in fields.items() if v is not None})
            hits = [SearchHit.model_validate(row) for row in rows]
        return [_document(hit) for hit in hits]


def _document(hit: SearchHit) -> Document:
    return Document(
        # The span is the passage's identity: the same text elsewhere is another passage.
        id=f"{hit.article_id}:{hit.start}-{hit.end}",
        page_content=hit.text,
        metadata=hit.model_dump(exclude={"text"}),
    )


class ChatNewsdesk(_NewsdeskClient, BaseChatModel):
    """Newsdesk's cited answers as a LangChain chat model.

    The last message is the question and the human and AI messages before it the
    conversation (a follow-up is answered in its context); system messages are not
    instructions Newsdesk takes. The reply's ``response_metadata`` holds ``citations``
    (each ``{n, article_id, title, source, published_at, start, end, quote}``, checked
    against the article's text), ``engine``, ``refused``, ``citations_verified``,
    ``citations_rejected``, ``claims_dropped`` and, for a follow-up, ``standalone_question``
    (the question as retrieval read it)."""

    top_k: int | None = Field(default=None, description="Passages to answer from (1 to 50).")

    @property
    def _llm_type(self) -> str:
        return "newsdesk"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "top_k": self.top_k, "filters": self.filters}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if stop:
            # Cutting a verified answer at a stop word could cut a claim from its citation.
            raise ValueError("ChatNewsdesk does not take stop sequences")
        turns = [m for m in messages if m.type in ("human", "ai")]
        if not turns or not isinstance(turns[-1], HumanMessage):
            raise ValueError("the last message must be a human message: the question")
        fields = {
            "question": turns[-1].text,
            "history": [
                {"role": "user" if m.type == "human" else "assistant", "content": m.text}
                for m in turns[:-1]
            ],
            "filters": self.filters,
            "top_k": self.top_k,
        }
        if self.newsdesk is not None:
            answer = AnswerService(self.newsdesk).answer(parse_request(AskBody, **fields))
        else:
            body = {k: v for k, v in fields.items() if v not in (None, [])}
            answer = Answer.model_validate(self._post("/v1/ask", body))
        return ChatResult(generations=[ChatGeneration(message=_message(answer))])


def _message(answer: Answer) -> AIMessage:
    return AIMessage(
        content=answer.answer,
        response_metadata={
            "model_name": "newsdesk",
            "engine": answer.engine,
            "refused": answer.refused,
            "citations": [c.model_dump() for c in answer.citations],
            "citations_verified": answer.citations_verified,
            "citations_rejected": answer.citations_rejected,
            "claims_dropped": answer.claims_dropped,
            # The follow-up as retrieval read it, with what the conversation supplied.
            "standalone_question": answer.standalone_question,
        },
        usage_metadata=UsageMetadata(
            input_tokens=answer.usage.prompt_tokens,
            output_tokens=answer.usage.completion_tokens,
            total_tokens=answer.usage.total_tokens,
        ),
    )
