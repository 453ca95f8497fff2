"""The LangChain integration, driven by langchain-core's own classes: retrievers and chat
models invoked directly and inside LCEL chains, against the HTTP API and in process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from operator import itemgetter

import httpx
import pytest
from fastapi.testclient import TestClient
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableParallel, RunnablePassthrough
from pydantic import SecretStr

from service.api import create_app
from service.context import Newsdesk
from service.errors import InvalidRequest
from service.integrations.langchain import ChatNewsdesk, NewsdeskAPIError, NewsdeskRetriever

QUESTION = "How many individuals were fleeing their homes?"
SPAN_KEYS = {"article_id", "title", "source", "published_at", "start", "end", "score"}


def over_http(client: TestClient, cls: type, **fields: object):  # type: ignore[no-untyped-def]
    return cls(base_url=str(client.base_url), http_client=client, **fields)


def article_text(client: httpx.Client, article_id: str) -> str:
    return str(client.get(f"/v1/articles/{article_id}").json()["text"])


def test_the_retriever_returns_documents_that_are_exact_spans(client: TestClient) -> None:
    retriever = over_http(client, NewsdeskRetriever, top_k=3)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    assert "121,000" in docs[0].page_content
    for doc in docs:
        assert set(doc.metadata) == SPAN_KEYS
        m = doc.metadata
        assert article_text(client, m["article_id"])[m["start"] : m["end"]] == doc.page_content
        assert doc.id == f"{m['article_id']}:{m['start']}-{m['end']}"
    assert docs == sorted(docs, key=lambda d: -d.metadata["score"])


def test_in_process_and_over_http_give_the_same_documents(client: TestClient, nd: Newsdesk) -> None:
    for mode in ("hybrid", "keyword"):
        http = over_http(client, NewsdeskRetriever, top_k=5, mode=mode).invoke(QUESTION)
        local = NewsdeskRetriever(newsdesk=nd, top_k=5, mode=mode).invoke(QUESTION)
        assert local == http and len(local) == 5


def test_the_retriever_in_a_chain_with_runnable_passthrough(client: TestClient) -> None:
    retriever = over_http(client, NewsdeskRetriever, top_k=2)

    def cite(docs: list[Document]) -> str:
        return "\n---\n".join(
            f"[{d.metadata['article_id']} {d.metadata['start']}-{d.metadata['end']}] "
            f"{d.page_content}"
            for d in docs
        )

    chain = RunnableParallel(context=retriever | cite, question=RunnablePassthrough())
    out = chain.invoke(QUESTION)
    assert out["question"] == QUESTION
    passages = out["context"].split("\n---\n")
    assert len(passages) == 2 and "121,000" in passages[0]
    batch = (retriever | cite).batch([QUESTION, "General Gerasimov"])
    assert "121,000" in batch[0] and "Gerasimov" in batch[1]
    # Async chains get the same passages (langchain-core runs the call in its executor).
    assert asyncio.run(chain.ainvoke(QUESTION)) == out


def test_retriever_filters_use_outlet_names_in_any_case(client: TestClient) -> None:
    article = {
        "id": "ardo-1",
        "text": "The river Oona flooded 40 homes in Ardo.",
        "source": "Ardo Gazette",
    }
    assert client.post("/v1/articles", json=article).status_code == 201
    retriever = over_http(client, NewsdeskRetriever, filters={"sources": ["ardo gazette"]})
    assert [d.metadata["source"] for d in retriever.invoke("river flooded")] == ["Ardo Gazette"]
    unknown = over_http(client, NewsdeskRetriever, filters={"sources": ["Ardo Times"]})
    with pytest.raises(NewsdeskAPIError) as caught:
        unknown.invoke("river flooded")
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert "known sources: Ardo Gazette" in caught.value.message


def test_a_blank_query_is_refused_both_ways(client: TestClient, nd: Newsdesk) -> None:
    with pytest.raises(NewsdeskAPIError) as caught:
        over_http(client, NewsdeskRetriever).invoke("  ")
    assert caught.value.status == 422
    with pytest.raises(InvalidRequest, match="the query is empty"):
        NewsdeskRetriever(newsdesk=nd).invoke("  ")


def check_cited(message: AIMessage, client: httpx.Client | Callable[[str], str]) -> list[dict]:
    text_of = client if callable(client) else lambda aid: article_text(client, aid)
    meta = message.response_metadata
    citations = meta["citations"]
    assert citations and meta["engine"] == "extractive" and meta["refused"] is False
    assert meta["citations_verified"] >= len(citations)
    for c in citations:
        assert f"[{c['n']}]" in message.content
        assert text_of(c["article_id"])[c["start"] : c["end"]] == c["quote"]
    return citations


def test_chat_model_answers_with_citations_in_response_metadata(client: TestClient) -> None:
    chat = over_http(client, ChatNewsdesk)
    message = chat.invoke(QUESTION)
    assert isinstance(message, AIMessage) and "121,000" in message.content
    check_cited(message, client)
    assert message.usage_metadata is not None


def test_chat_model_in_a_prompt_chain_keeps_the_citations(client: TestClient) -> None:
    retriever = over_http(client, NewsdeskRetriever, top_k=1)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the news."), ("human", "{question}")]
    )
    chain = RunnableParallel(
        evidence=itemgetter("question") | retriever, reply=prompt | over_http(client, ChatNewsdesk)
    )
    out = chain.invoke({"question": QUESTION})
    citations = check_cited(out["reply"], client)
    assert out["evidence"][0].metadata["article_id"] in {c["article_id"] for c in citations}
    # Plain text for chains that only want the answer.
    text = (prompt | over_http(client, ChatNewsdesk) | StrOutputParser()).invoke(
        {"question": QUESTION}
    )
    assert text == out["reply"].content


def test_chat_model_follow_up_uses_the_conversation(client: TestClient, nd: Newsdesk) -> None:
    conversation = [
        SystemMessage("be brief"),
        HumanMessage("What did General Gerasimov reveal?"),
        AIMessage("He revealed a capture. [1]"),
        HumanMessage("and how many troops?"),
    ]
    for chat in (over_http(client, ChatNewsdesk), ChatNewsdesk(newsdesk=nd)):
        reply = chat.invoke(conversation)
        assert "Gerasimov" in reply.response_metadata["standalone_question"]
        assert any("400" in c["quote"] for c in check_cited(reply, client))


def test_chat_model_needs_a_question_last(client: TestClient) -> None:
    with pytest.raises(ValueError, match="last message must be a human message"):
        over_http(client, ChatNewsdesk).invoke([HumanMessage("hi"), AIMessage("hello")])


def test_keys_are_sent_as_bearer_tokens(nd: Newsdesk) -> None:
    nd.settings.api_keys = [SecretStr("k-one")]
    with TestClient(create_app(newsdesk=nd)) as c:
        with pytest.raises(NewsdeskAPIError) as caught:
            over_http(c, NewsdeskRetriever).invoke(QUESTION)
        assert (caught.value.status, caught.value.code) == (401, "unauthorized")
        keyed = {"api_key": SecretStr("k-one")}
        assert over_http(c, NewsdeskRetriever, **keyed).invoke(QUESTION)
        reply = over_http(c, ChatNewsdesk, **keyed).invoke(QUESTION)
        check_cited(reply, lambda aid: nd.store.get_article(aid).text)  # type: ignore[union-attr]
        # The key is a secret: it shows in no repr or serialisation of the retriever.
        assert "k-one" not in repr(over_http(c, NewsdeskRetriever, **keyed))
