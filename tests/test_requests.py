"""One request model per feature, checked once, and one error taxonomy every surface maps."""

from __future__ import annotations

import pytest

import service.errors
import vectorstore.store
from service.answer import AnswerService
from service.api.errors import STATUS_OF_CODE
from service.api.schemas import ChatCompletionBody
from service.context import Newsdesk
from service.errors import InvalidRequest, NothingFound, QuestionTooLong, UnknownArticle
from service.requests import (
    MAX_MESSAGE_CHARS,
    AskBody,
    BriefingBody,
    Filters,
    HistoryMessage,
    SummaryBody,
    parse_request,
)
from service.slack.app import friendly_error
from service.summarize import SummaryService


def test_surfaces_get_the_first_problem_as_a_typed_error() -> None:
    with pytest.raises(InvalidRequest, match="^the question is empty$") as blank:
        parse_request(AskBody, question="  ")
    assert (blank.value.field, blank.value.code) == ("question", "invalid_request")

    with pytest.raises(QuestionTooLong) as long:
        parse_request(BriefingBody, topic="x" * 2001)
    assert str(long.value) == "The topic is longer than 2000 characters."
    assert (long.value.limit, long.value.code) == (2000, "question_too_long")

    with pytest.raises(InvalidRequest) as date:
        parse_request(AskBody, question="x", filters={"published_before": "soon"})
    assert (date.value.field, date.value.value) == ("filters.published_before", "soon")

    with pytest.raises(InvalidRequest, match="^max_words: Input should be greater"):
        parse_request(SummaryBody, max_words=10)


def test_dates_are_normalised_and_filters_become_the_stores() -> None:
    ask = parse_request(
        AskBody, question="x", filters={"sources": ["Gazette"], "published_after": "2024-03-01"}
    )
    assert ask.filters is not None
    flt = ask.filters.to_article_filter()
    assert (flt.sources, flt.published_after, flt.article_ids) == (("Gazette",), "2024-03-01", None)
    assert Filters().to_article_filter().is_empty()


def test_chat_converts_to_the_one_ask_request() -> None:
    body = ChatCompletionBody.model_validate(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "a" * (MAX_MESSAGE_CHARS + 5)},
                {"role": "user", "content": [{"type": "text", "text": " and then? "}]},
            ],
            "temperature": 0,
        }
    )
    ask = body.to_ask()
    assert ask.question == "and then?"
    # A history the client wrote to no limit of ours is clipped, not refused.
    assert ask.history == [
        HistoryMessage("user", "first"),
        HistoryMessage("assistant", "a" * MAX_MESSAGE_CHARS),
    ]
    last_is_not_the_user = ChatCompletionBody.model_validate(
        {"messages": [{"role": "assistant", "content": "hi"}]}
    )
    with pytest.raises(InvalidRequest, match="must be from the user"):
        last_is_not_the_user.to_ask()


def test_unknown_ids_in_filters_are_refused_by_every_feature(nd: Newsdesk) -> None:
    filters = {"article_ids": ["nope"]}
    with pytest.raises(UnknownArticle, match=r"^unknown article id\(s\): nope$"):
        AnswerService(nd).answer(parse_request(AskBody, question="x", filters=filters))
    with pytest.raises(UnknownArticle) as unknown:
        SummaryService(nd).summarize(parse_request(SummaryBody, filters=filters))
    assert unknown.value.missing == ["nope"] and isinstance(unknown.value, NothingFound)


def _codes(base: type) -> set[str]:
    found = {base.code} if "code" in vars(base) else set()
    for sub in base.__subclasses__():
        found |= _codes(sub)
    return found


def test_every_error_code_has_an_http_status_and_a_slack_message() -> None:
    codes = _codes(service.errors.NewsdeskError) | _codes(vectorstore.store.StoreError)
    assert codes - {"error"} == set(STATUS_OF_CODE)
    generic = friendly_error(RuntimeError("bug"))
    for error in (
        service.errors.NothingIngested("x"),
        UnknownArticle(["a"]),
        QuestionTooLong("question", 2000),
        InvalidRequest("x"),
        service.errors.LLMUnavailable("x"),
        vectorstore.store.StoreFull("x"),
    ):
        assert friendly_error(error) != generic, error
