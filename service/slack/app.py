"""The Slack bot: a bolt ``App`` whose listeners acknowledge at once and do the work in
lazy listeners (threads), for HTTP mode (mounted in the FastAPI app) and Socket Mode.

- Mentions and direct messages are answered in a thread; a later mention or message in a
  thread the bot is part of is a follow-up, with the thread (conversations.replies) as
  the conversation history.
- ``/ask``, ``/summarize`` and ``/brief`` reply through the command's response_url: in the
  channel, or only to the user for errors and for ``/ask`` when ``slack_ephemeral``.
- Slack's retries (``X-Slack-Retry-Num`` of 1 or more) are acknowledged and dropped, so
  nothing is answered twice; the first delivery was acknowledged within 3 s and is being
  answered. Socket Mode marks every first delivery ``retry_attempt: 0``: that one is answered.
- A slash command's reply starts with who asked and what; a summary or briefing (or answer)
  that the sources don't cover goes only to the asker.
- Acknowledgements never queue behind the API's request threads (Slack retries after 3 s
  and disables apps that keep missing it): bolt's dispatch runs on a small pool of its own
  until bolt has its auth.test result, then on the event loop, with no thread at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr
from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.middleware.authorization import SingleTeamAuthorization
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from service.answer import AnswerService
from service.articles import require_articles
from service.brief import BriefingService
from service.context import Newsdesk
from service.errors import InvalidRequest, LLMError, NothingFound, NothingIngested, QuestionTooLong
from service.links import LinkSigner, with_links
from service.models import Answer, Briefing, CitedResult, Summary
from service.requests import (
    AskBody,
    BriefingBody,
    HistoryMessage,
    StoriesQuery,
    StoryBriefingBody,
    SummaryBody,
    parse_request,
)
from service.slack.blocks import (
    WORKING,
    Block,
    answer_blocks,
    answer_text,
    briefing_blocks,
    briefing_text,
    context,
    escape,
    section,
    shorten,
    split_messages,
    stories_blocks,
    stories_text,
    summary_blocks,
    summary_text,
    text_blocks,
)
from service.slack.history import bot_in_thread, slack_to_plain, thread_history
from service.stories import StoryService, UnknownStory
from service.summarize import SummaryService
from vectorstore.store import StoreError

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)
R = TypeVar("R", bound=CitedResult)

COMMANDS = ("/ask", "/summarize", "/brief", "/stories")
# Commands that mean something without text: a summary of everything, the recent stories.
NO_TEXT_NEEDED = ("/summarize", "/stories")
USAGE = {
    "/ask": "Usage: `/ask <question>`, for example `/ask how many people fled Kursk?`",
    "/summarize": "Usage: `/summarize <topic>`, for example `/summarize the Kursk incursion`",
    "/brief": "Usage: `/brief <topic>` or `/brief <story id>`, for example `/brief the Kursk "
    "incursion` or `/brief story-1f2e3d4c` (ids from `/stories`)",
}
HELP = (
    "Ask me about the news and I'll answer from the ingested articles, citing the exact "
    "passages: mention me with a question, e.g. _how many people fled Kursk?_, or use "
    "`/ask`, `/summarize <topic>` and `/brief <topic>`; `/stories` lists the stories (one "
    "event across outlets) and `/brief <story id>` briefs one. Reply in the thread to follow up."
)
# Stories `/stories` lists: one message's worth.
STORIES_LISTED = 15
# Slash command replies go through the response_url, which Slack allows five times.
MAX_COMMAND_MESSAGES = 4
# Longer threads are read page by page up to this many messages.
MAX_THREAD_MESSAGES = 400
# Threads for bolt's dispatch (middleware and the ack listener) while it still has to make
# its auth.test call. Kept apart from the API's request threads so an API burst cannot hold
# Slack's acks past its 3 s limit; the answers themselves run in the lazy listener executor.
ACK_THREADS = 4
# The lazy listeners: each one answers a question, summary or briefing.
LISTENER_THREADS = 8
# Slack user ids (U…, W… for Enterprise Grid): only these are written as <@id> mentions.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def friendly_error(exc: BaseException) -> str:
    """A short message for Slack users, the one place Slack words the service's errors
    (service/errors.py); the details go to the log."""
    if isinstance(exc, UnknownStory):
        return (
            f":mag: There is no story `{escape(shorten(exc.story_id, 100))}`: `/stories` lists "
            "the recent ones with their ids."
        )
    if isinstance(exc, NothingIngested):
        return (
            ":card_index_dividers: No articles have been ingested yet, so there is nothing to "
            "answer from. Add some with `newsdesk ingest` or `POST /v1/articles`."
        )
    if isinstance(exc, NothingFound):
        return ":mag: I couldn't find any ingested articles about that topic."
    if isinstance(exc, QuestionTooLong):
        return f":scissors: That's too long for me: please keep it under {exc.limit} characters."
    if isinstance(exc, InvalidRequest):
        return f":warning: I can't take that request: {escape(str(exc))}"
    if isinstance(exc, LLMError):
        return (
            ":warning: The language model isn't reachable right now, so I couldn't answer. "
            "Please try again in a few minutes."
        )
    if isinstance(exc, StoreError):
        return (
            ":warning: The article store isn't reachable right now, so I couldn't answer. "
            "Please try again in a few minutes."
        )
    return ":warning: Sorry, something went wrong while answering. The error has been logged."


def _log_failure(what: str, exc: BaseException) -> None:
    if isinstance(exc, NothingFound | InvalidRequest):
        log.info("slack %s: %s", what, exc)
    elif isinstance(exc, LLMError | StoreError):
        log.warning("slack %s failed: %s: %s", what, type(exc).__name__, exc)
    else:
        log.exception("slack %s failed", what)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def retry_number(req: BoltRequest) -> int:
    """Which delivery this is: 0 for the first. Socket Mode sends ``retry_attempt: 0`` on
    every first delivery, which bolt passes on as the header ``x-slack-retry-num: 0``."""
    value = (req.headers.get("x-slack-retry-num") or ["0"])[0].strip()
    try:
        return int(value or "0")
    except ValueError:
        return 0


def drop_retries(req: BoltRequest, next: Callable[[], Any]) -> Any:
    """Acknowledge Slack's retries without running anything: the first delivery was
    acknowledged in time and its lazy listener is answering (or has answered)."""
    retry = retry_number(req)
    if retry >= 1:
        reason = (req.headers.get("x-slack-retry-reason") or ["?"])[0]
        log.info("slack: dropped retry %s (%s)", retry, reason or "?")
        return BoltResponse(status=200, body="")
    return next()


@dataclass
class Reply:
    """A result as Slack blocks, its notification text, and whether the sources had
    nothing on it (then it goes only to the asker)."""

    blocks: list[Block]
    text: str
    refused: bool = False


def asked_line(command: Mapping[str, Any], text: str) -> str:
    """Who asked what, for the top of a slash command's reply: Slack does not show the
    command itself to anyone, so an answer in the channel would otherwise come from nowhere."""
    user_id = str(command.get("user_id") or "")
    if _USER_ID.fullmatch(user_id):
        who = f"<@{user_id}>"
    else:
        who = escape(shorten(str(command.get("user_name") or "Someone"), 60))
    what = escape(shorten(text, 300))
    name = command.get("command")
    if name == "/summarize":
        return f"{who} asked for a summary of: {what}" if text else f"{who} asked for a summary"
    if name == "/brief":
        return f"{who} asked for a briefing on: {what}"
    if name == "/stories":
        return (
            f"{who} asked for the stories about: {what}" if text else f"{who} asked for the stories"
        )
    return f"{who} asked: {what}"


# `/brief story-1f2e`, `/brief story story-1f2e`, `/brief story:1f2e`: a story's briefing
# (a topic that merely starts with the word "story" stays a topic).
_STORY_REFERENCE = re.compile(
    r"(?:story[:\s]\s*)?(story-[A-Za-z0-9_-]+)|story:\s*([A-Za-z0-9_-]+)", re.IGNORECASE
)


def story_reference(text: str) -> str | None:
    """The story id a command's whole text names, or None for any other text."""
    m = _STORY_REFERENCE.fullmatch(text.strip())
    return (m.group(1) or m.group(2)) if m else None


def no_coverage_text(name: str, text: str) -> str:
    if text:
        lead = f":no_entry_sign: No coverage of “{escape(shorten(text, 200))}”"
    else:
        lead = ":no_entry_sign: No coverage to summarise"
    what = {"/summarize": "a summary", "/brief": "a briefing"}.get(name, "an answer")
    return (
        f"{lead} in the ingested articles, so {what} was not posted to the channel. "
        "What the service said:"
    )


class SlackBot:
    """The listeners. Web API calls go through the ``client`` bolt hands each listener."""

    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk
        self.settings = newsdesk.settings
        self.answers = AnswerService(newsdesk)
        self.summaries = SummaryService(newsdesk)
        self.briefings = BriefingService(newsdesk)

    @property
    def _llm_model(self) -> str | None:
        return self.settings.llm_model if self.settings.llm_configured else None

    @functools.cached_property
    def _links(self) -> LinkSigner:
        return LinkSigner.from_settings(self.settings)

    def _linked(self, result: R) -> R:
        """Sources linked to signed reader pages, which open in a browser without an API
        key; only with NEWSDESK_PUBLIC_URL, the one address Slack's readers can reach."""
        if not self.settings.public_url:
            return result
        return with_links(result, self._links, self.settings.public_url)

    # ---- the work -----------------------------------------------------------------

    def answer(self, text: str, history: list[HistoryMessage]) -> Answer:
        question = parse_request(AskBody, question=text, history=history)
        # Said up front here: an empty store would otherwise read as "not covered".
        require_articles(self.nd)
        return self.answers.answer(question)

    def _answer_message(self, text: str, history: list[HistoryMessage]) -> Reply:
        started = time.perf_counter()
        answer = self.answer(text, history)
        log.info(
            "slack answer: engine=%s refused=%s citations=%d history=%d in %.2fs",
            answer.engine,
            answer.refused,
            len(answer.citations),
            len(history),
            time.perf_counter() - started,
        )
        blocks = answer_blocks(self._linked(answer), llm_model=self._llm_model)
        return Reply(blocks, answer_text(answer), answer.refused)

    # ---- events -------------------------------------------------------------------

    @staticmethod
    def ack(ack: Any) -> None:
        ack()

    def wants_message(self, event: dict[str, Any], context: BoltContext) -> bool:
        """Message events worth a lazy listener: DMs to the bot, and replies in threads
        (in channels only when they don't mention the bot: app_mention has those)."""
        if event.get("subtype") not in (None, "thread_broadcast"):
            return False
        if event.get("bot_id") or not event.get("user"):
            return False
        if event.get("channel_type") == "im":
            return True
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts"):
            return False
        bot = context.bot_user_id
        return not (bot and f"<@{bot}>" in (event.get("text") or ""))

    def on_mention(self, event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if str(event.get("channel", "")).startswith("D"):
            return  # a mention in a DM is also a message.im event, answered there
        self.converse(event, client, context, only_if_bot_in_thread=False)

    def on_message(self, event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        dm = event.get("channel_type") == "im"
        self.converse(event, client, context, only_if_bot_in_thread=not dm)

    def converse(
        self,
        event: dict[str, Any],
        client: WebClient,
        context: BoltContext,
        *,
        only_if_bot_in_thread: bool,
    ) -> None:
        """Answer a message in its thread. Nothing escapes: a lazy listener's exception
        would only reach bolt's log, so unexpected ones (Slack unreachable) are logged."""
        try:
            self._converse(event, client, context, only_if_bot_in_thread=only_if_bot_in_thread)
        except Exception:
            log.exception("slack: handling a %s event failed", event.get("type"))

    def _converse(
        self,
        event: dict[str, Any],
        client: WebClient,
        context: BoltContext,
        *,
        only_if_bot_in_thread: bool,
    ) -> None:
        channel, ts = event["channel"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        bot_user_id, bot_id = context.bot_user_id, context.bot_id
        history: list[HistoryMessage] = []
        if thread_ts != ts:
            try:
                replies = self._replies(client, channel, thread_ts)
            except SlackApiError as exc:
                log.warning("slack: conversations.replies failed: %s", exc.response.get("error"))
                replies = []
                if only_if_bot_in_thread:
                    return
            if only_if_bot_in_thread and not bot_in_thread(replies, bot_user_id, bot_id):
                return
            history = thread_history(
                replies,
                bot_user_id=bot_user_id,
                bot_id=bot_id,
                before_ts=ts,
            )
        elif only_if_bot_in_thread:
            return

        question = slack_to_plain(event.get("text") or "", bot_user_id)
        self._react(client, channel, ts)
        placeholder = self._post(client, channel, thread_ts, text_blocks(WORKING), WORKING)
        try:
            if question:
                reply = self._answer_message(question, history)
                blocks, text = reply.blocks, reply.text
            else:
                blocks, text = text_blocks(HELP), HELP
        except Exception as exc:
            _log_failure("answer", exc)
            message = friendly_error(exc)
            self._deliver(client, channel, thread_ts, placeholder, text_blocks(message), message)
            return
        self._deliver(client, channel, thread_ts, placeholder, blocks, text)

    # ---- Web API --------------------------------------------------------------------

    @staticmethod
    def _replies(client: WebClient, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        while len(messages) < MAX_THREAD_MESSAGES:
            resp = client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200, cursor=cursor
            )
            messages += resp.get("messages") or []
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return messages

    @staticmethod
    def _react(client: WebClient, channel: str, ts: str) -> None:
        try:
            client.reactions_add(channel=channel, timestamp=ts, name="eyes")
        except SlackApiError as exc:  # already_reacted, missing scope: progress is optional
            log.debug("slack: reactions.add failed: %s", exc.response.get("error"))

    @staticmethod
    def _post(
        client: WebClient, channel: str, thread_ts: str, blocks: list[Block], text: str
    ) -> str | None:
        try:
            resp = client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
            return resp.get("ts")
        except SlackApiError as exc:
            log.warning("slack: chat.postMessage failed: %s", exc.response.get("error"))
            return None

    def _deliver(
        self,
        client: WebClient,
        channel: str,
        thread_ts: str,
        placeholder: str | None,
        blocks: list[Block],
        text: str,
    ) -> None:
        """The reply replaces the progress message; what doesn't fit in one message
        follows in the thread."""
        messages = split_messages(blocks)
        try:
            if placeholder:
                first, *messages = messages
                client.chat_update(channel=channel, ts=placeholder, text=text, blocks=first)
            for more in messages:
                client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=text,
                    blocks=more,
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except SlackApiError as exc:
            log.error("slack: delivering the reply failed: %s", exc.response.get("error"))
            message = friendly_error(exc)
            try:
                if placeholder:
                    client.chat_update(
                        channel=channel, ts=placeholder, text=message, blocks=text_blocks(message)
                    )
            except SlackApiError:
                log.error("slack: could not report the failure either")

    # ---- slash commands -------------------------------------------------------------

    @staticmethod
    def _command_text(command: dict[str, Any]) -> str:
        return slack_to_plain(command.get("text") or "")

    def ack_command(self, ack: Any, command: dict[str, Any]) -> None:
        name, text = command.get("command", ""), self._command_text(command)
        if not text and name not in NO_TEXT_NEEDED:
            ack(response_type="ephemeral", text=USAGE.get(name, HELP))
            return
        what = f": {escape(shorten(text, 200))}" if text else ""
        ack(response_type="ephemeral", text=f":hourglass_flowing_sand: Working on it{what} …")

    def on_command(self, command: dict[str, Any], respond: Any) -> None:
        try:
            self._run_command(command, respond)
        except Exception:
            log.exception("slack: handling %s failed", command.get("command"))

    def _run_command(self, command: dict[str, Any], respond: Any) -> None:
        name, text = command.get("command", ""), self._command_text(command)
        if not text and name not in NO_TEXT_NEEDED:
            return  # the acknowledgement showed the usage
        ephemeral = False
        try:
            if name == "/ask":
                reply = self._answer_message(text, [])
                ephemeral = self.settings.slack_ephemeral
            elif name == "/summarize":
                reply = self._summary_message(text)
            elif name == "/brief" and (story_id := story_reference(text)):
                reply = self._story_briefing_message(story_id)
            elif name == "/brief":
                reply = self._briefing_message(text)
            elif name == "/stories":
                reply = self._stories_message(text)
            else:
                reply = Reply(text_blocks(HELP), HELP)
        except Exception as exc:
            _log_failure(name or "command", exc)
            message = friendly_error(exc)
            self._respond(respond, "ephemeral", text_blocks(message), message)
            return
        if reply.refused:
            # Nothing the sources support: the asker learns so, the channel is not spammed.
            log.info("slack %s: no coverage; replied only to the asker", name)
            head = section(no_coverage_text(name, text))
            blocks, response_type = [head, *reply.blocks], "ephemeral"
        else:
            blocks = [context(asked_line(command, text)), *reply.blocks]
            response_type = "ephemeral" if ephemeral else "in_channel"
        for blocks_part in split_messages(blocks, max_messages=MAX_COMMAND_MESSAGES):
            self._respond(respond, response_type, blocks_part, reply.text)

    def _summary_message(self, topic: str) -> Reply:
        req = parse_request(SummaryBody, topic=topic or None)
        require_articles(self.nd)
        summary: Summary = self.summaries.summarize(req)
        blocks = summary_blocks(self._linked(summary), llm_model=self._llm_model)
        return Reply(blocks, summary_text(summary), summary.refused)

    def _briefing_message(self, topic: str) -> Reply:
        req = parse_request(BriefingBody, topic=topic)
        require_articles(self.nd)
        briefing: Briefing = self.briefings.brief(req)
        blocks = briefing_blocks(self._linked(briefing), llm_model=self._llm_model)
        return Reply(blocks, briefing_text(briefing), briefing.refused)

    def _stories_message(self, text: str) -> Reply:
        query = parse_request(StoriesQuery, q=text or None, limit=STORIES_LISTED)
        require_articles(self.nd)
        stories = StoryService(self.nd).list(query)
        return Reply(stories_blocks(stories), stories_text(stories))

    def _story_briefing_message(self, story_id: str) -> Reply:
        require_articles(self.nd)
        briefing = StoryService(self.nd).briefing(story_id, StoryBriefingBody())
        blocks = briefing_blocks(self._linked(briefing), llm_model=self._llm_model)
        return Reply(blocks, briefing_text(briefing), briefing.refused)

    @staticmethod
    def _respond(respond: Any, response_type: str, blocks: list[Block], text: str) -> None:
        try:
            resp = respond(
                response_type=response_type,
                text=text,
                blocks=blocks,
                replace_original=False,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception:
            log.exception("slack: posting to the response_url failed")
            return
        if getattr(resp, "status_code", 200) != 200:
            log.error("slack: response_url answered %s: %s", resp.status_code, resp.body)


def slack_web_client(settings: Any) -> WebClient:
    """A WebClient for the bot token on ``NEWSDESK_SLACK_API_URL`` (Slack's, GovSlack's or a
    local stand-in); Socket Mode opens its connection through the same client."""
    base_url = settings.slack_api_url
    # slack_sdk joins method names onto the base URL as is.
    return WebClient(
        token=_secret(settings.slack_bot_token),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
    )


def build_app(
    newsdesk: Newsdesk,
    *,
    client: WebClient | None = None,
    executor: Executor | None = None,
) -> App:
    """The bolt App for this Newsdesk; nothing is kept at module level.

    ``client`` replaces the WebClient made from ``slack_bot_token`` and
    ``slack_api_url``; ``executor`` runs the lazy listeners (default: a pool of
    ``LISTENER_THREADS``).
    """
    settings = newsdesk.settings
    if client is None:
        if not _secret(settings.slack_bot_token):
            raise ValueError("the Slack bot needs NEWSDESK_SLACK_BOT_TOKEN")
        client = slack_web_client(settings)
    bot = SlackBot(newsdesk)
    app = App(
        name="newsdesk",
        client=client,
        signing_secret=_secret(settings.slack_signing_secret) or "",
        # Ack first, then the lazy listeners do the slow part in the executor.
        process_before_response=True,
        # auth.test happens on the first request instead of at start-up.
        token_verification_enabled=False,
        before_authorize=drop_retries,
        listener_executor=executor
        or ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="newsdesk-slack"),
    )
    app.event("app_mention")(ack=bot.ack, lazy=[bot.on_mention])
    app.event("message", matchers=[bot.wants_message])(ack=bot.ack, lazy=[bot.on_message])
    app.event("message")(bot.ack)  # every other message event: acknowledged, ignored
    for name in COMMANDS:
        app.command(name)(ack=bot.ack_command, lazy=[bot.on_command])
    return app


# ---- HTTP mode ---------------------------------------------------------------------------

# Slack sends Unix seconds; anything else cannot be checked against the 5-minute window.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class RawBodyVerifier(SignatureVerifier):
    """Slack's v0 signature computed over the raw bytes. The stock verifier decodes the
    body first, so a body that is not UTF-8 raised instead of simply failing the check."""

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        raw = body.encode() if isinstance(body, str) else (body or b"")
        base = b"v0:" + timestamp.encode("ascii") + b":" + raw
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return f"v0={digest}"


@dataclass
class Rejection:
    """An error response in the API's shape, ``{"error": {"code", "message"}}``."""

    status: int
    code: str
    message: str

    def response(self) -> Response:
        # The API's error shape, built here so this module need not import the API package.
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}}, status_code=self.status
        )


_BOLT_ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


def bolt_error(resp: BoltResponse) -> Rejection | None:
    """bolt's own error responses (``{"error": "invalid request"}`` for a signature it
    rejects, ``{"error": "unhandled request"}`` for an event or command with no listener)
    in the documented error shape; None for a success."""
    if resp.status < 400:
        return None
    message = ""
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(resp.body).get("error") or "")
    code = _BOLT_ERROR_CODES.get(resp.status, "slack_request_failed")
    text = f"Slack request rejected: {message}." if message else "Slack request rejected."
    return Rejection(resp.status, code, text)


def check_slack_request(
    verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]
) -> Rejection | None:
    """Why a request must not reach bolt, or None.

    bolt parses the body before it checks the signature, so a malformed body or timestamp
    would make it raise (a 500, unauthenticated) and a failed check makes it log the body.
    Here the signature is checked first, on the raw bytes, and only a signed, well-formed
    body is handed on. ``headers`` is case-insensitive (Starlette's) or has lower-case keys.
    """
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    # compare_digest refuses non-ASCII text, so such a header would raise, not fail.
    if not _TIMESTAMP.fullmatch(timestamp) or not signature.isascii():
        return Rejection(401, "unauthorized", "Missing or invalid Slack signature or timestamp.")
    if not verifier.is_valid(body, timestamp, signature):
        return Rejection(401, "unauthorized", "Invalid or stale Slack signature.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(400, "invalid_json", "The request body is not valid UTF-8.")
    content_type = (headers.get("content-type") or "").split(";")[0] or None
    try:
        # bolt's own parser, so what passes here parses the same way inside bolt.
        parsed = parse_body(text, content_type)
    except (ValueError, RecursionError):
        return Rejection(400, "invalid_json", "The request body (or its payload) is not JSON.")
    if not isinstance(parsed, dict):
        return Rejection(
            400, "invalid_request", "The request body (or its payload) is not a JSON object."
        )
    if "event" in parsed and not isinstance(parsed["event"], dict):
        return Rejection(400, "invalid_request", "The request's event is not a JSON object.")
    return None


def bolt_authorized(app: App) -> bool:
    """Whether bolt holds its auth.test result, so that dispatching a request makes no
    network call. bolt keeps it on its single-workspace authorization middleware and has
    no public accessor; if that ever moves, this says False and dispatch stays off the
    event loop."""
    middleware = getattr(app, "_middleware_list", None) or []
    return any(
        isinstance(m, SingleTeamAuthorization) and m.auth_test_result is not None
        for m in middleware
    )


def slack_http_configured(newsdesk: Newsdesk) -> bool:
    s = newsdesk.settings
    return bool(_secret(s.slack_bot_token) and _secret(s.slack_signing_secret))


def mount_slack(app: FastAPI, newsdesk: Newsdesk, *, bolt_app: App | None = None) -> None:
    """Add ``POST /slack/events`` and ``POST /slack/commands`` to the FastAPI app when
    ``NEWSDESK_SLACK_BOT_TOKEN`` and ``NEWSDESK_SLACK_SIGNING_SECRET`` are set; otherwise
    do nothing. ``bolt_app`` replaces the App built from the settings (tests)."""
    if not slack_http_configured(newsdesk):
        s = newsdesk.settings
        if _secret(s.slack_bot_token) or _secret(s.slack_signing_secret):
            log.warning(
                "slack: NEWSDESK_SLACK_BOT_TOKEN and NEWSDESK_SLACK_SIGNING_SECRET are both "
                "needed for HTTP mode; /slack routes not mounted"
            )
        else:
            log.info("slack: not configured; /slack routes not mounted")
        return

    verifier = RawBodyVerifier(_secret(newsdesk.settings.slack_signing_secret) or "")

    # Not anyio's default threadpool: the API's sync routes share that (40 threads), and a
    # burst of summaries left Slack's acks queued behind them for 5-17 s.
    ack_executor = ThreadPoolExecutor(max_workers=ACK_THREADS, thread_name_prefix="slack-ack")

    class ThreadedSlackRequestHandler(SlackRequestHandler):
        """bolt's handler, behind our own signature and body checks. Dispatch (middleware
        and the ack listener) never waits for the API's request threads: on Slack's own
        threads until bolt has made its one auth.test call, on the event loop after."""

        async def handle(
            self, req: Request, addition_context_properties: dict[str, Any] | None = None
        ) -> Response:
            body = await req.body()
            rejection = check_slack_request(verifier, body, req.headers)
            if rejection is not None:
                # Never the body: an unsigned request's content is the sender's, not Slack's.
                level = logging.INFO if rejection.status == 401 else logging.WARNING
                log.log(
                    level, "slack: %s %s: %s", req.url.path, rejection.status, rejection.message
                )
                return rejection.response()
            bolt_req = to_bolt_request(req, body, addition_context_properties)
            if bolt_authorized(self.app):
                # A few ms of CPU and no I/O (the lazy listeners are only submitted): done
                # here, it needs no thread, which under a CPU-bound burst is the difference
                # between waiting once for the GIL and waiting three times (bench/slack_ack.py).
                bolt_resp = self.app.dispatch(bolt_req)
            else:
                # The first request calls auth.test: never on the event loop.
                # The request's context (its id in the logs) goes along, as run_in_threadpool's.
                run = functools.partial(contextvars.copy_context().run, self.app.dispatch)
                loop = asyncio.get_running_loop()
                bolt_resp = await loop.run_in_executor(ack_executor, run, bolt_req)
            failed = bolt_error(bolt_resp)
            if failed is not None:
                log.info("slack: %s %s: %s", req.url.path, failed.status, failed.message)
                return failed.response()
            return to_starlette_response(bolt_resp)

    bolt = bolt_app or build_app(newsdesk)
    handler = ThreadedSlackRequestHandler(bolt)

    async def slack_events(req: Request) -> Response:
        return await handler.handle(req)

    async def slack_commands(req: Request) -> Response:
        return await handler.handle(req)

    described = {
        200: {"description": "Acknowledged (the answer follows in Slack)."},
        400: {"description": "Signed, but the body is not UTF-8 or not the JSON Slack sends."},
        401: {"description": "Missing, invalid or stale Slack signature or timestamp."},
        404: {"description": "Signed, but no listener for this command or event type."},
    }
    app.add_api_route(
        "/slack/events",
        slack_events,
        methods=["POST"],
        tags=["slack"],
        summary="Slack Events API (signed by Slack)",
        responses=described,
    )
    app.add_api_route(
        "/slack/commands",
        slack_commands,
        methods=["POST"],
        tags=["slack"],
        summary="Slack slash commands /ask, /summarize, /brief (signed by Slack)",
        responses=described,
    )
    app.state.slack_app = bolt
    log.info("slack: mounted /slack/events and /slack/commands")


# ---- Socket Mode ---------------------------------------------------------------------------


def socket_mode_handler(
    newsdesk: Newsdesk, *, client: WebClient | None = None, executor: Executor | None = None
) -> SocketModeHandler:
    """A Socket Mode handler for the bot (not yet connected). ``apps.connections.open`` goes
    through the bot's WebClient, so to ``NEWSDESK_SLACK_API_URL`` too."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    app_token = _secret(newsdesk.settings.slack_app_token)
    if not app_token:
        raise ValueError("Socket Mode needs NEWSDESK_SLACK_APP_TOKEN (xapp-…)")
    app = build_app(newsdesk, client=client, executor=executor)
    return SocketModeHandler(app, app_token=app_token)


def run_socket_mode(
    newsdesk: Newsdesk,
    *,
    stop: threading.Event | None = None,
    executor: Executor | None = None,
) -> None:
    """Connect to Slack over Socket Mode and serve until ``stop`` is set or the process is
    interrupted (blocks); ``newsdesk slack`` runs this. ``executor`` runs the lazy listeners."""
    handler = socket_mode_handler(newsdesk, executor=executor)
    log.info("slack: starting Socket Mode (Web API %s)", newsdesk.settings.slack_api_url)
    handler.connect()
    try:
        (stop or threading.Event()).wait()
    finally:
        handler.close()
        log.info("slack: Socket Mode closed")
