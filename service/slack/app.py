"""The Slack bot: a bolt ``App`` whose listeners acknowledge at once and do the work in
lazy listeners (threads), for HTTP mode (mounted in the FastAPI app) and Socket Mode.

- Mentions and direct messages are answered in a thread; a later mention or message in a
  thread the bot is part of is a follow-up, with the thread (conversations.replies) as
  the conversation history.
- ``/ask``, ``/summarize`` and ``/brief`` reply through the command's response_url: in the
  channel, or only to the user for errors and for ``/ask`` when ``slack_ephemeral``.
- Slack's retries (``X-Slack-Retry-Num``) are acknowledged and dropped, so nothing is
  answered twice; the first delivery was acknowledged within 3 s and is being answered.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr
from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool

from service.answer import AnswerService
from service.articles import require_articles
from service.brief import BriefingService
from service.context import Newsdesk
from service.errors import InvalidRequest, LLMError, NothingFound, NothingIngested, QuestionTooLong
from service.models import Answer
from service.requests import AskBody, BriefingBody, HistoryMessage, SummaryBody, parse_request
from service.slack.blocks import (
    WORKING,
    Block,
    answer_blocks,
    answer_text,
    briefing_blocks,
    briefing_text,
    escape,
    shorten,
    split_messages,
    summary_blocks,
    summary_text,
    text_blocks,
)
from service.slack.history import bot_in_thread, slack_to_plain, thread_history
from service.summarize import SummaryService
from vectorstore.store import StoreError

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)

COMMANDS = ("/ask", "/summarize", "/brief")
USAGE = {
    "/ask": "Usage: `/ask <question>`, for example `/ask how many people fled Kursk?`",
    "/summarize": "Usage: `/summarize <topic>`, for example `/summarize the Kursk incursion`",
    "/brief": "Usage: `/brief <topic>`, for example `/brief the Kursk incursion`",
}
HELP = (
    "Ask me about the news and I'll answer from the ingested articles, citing the exact "
    "passages: mention me with a question, e.g. _how many people fled Kursk?_, or use "
    "`/ask`, `/summarize <topic>` and `/brief <topic>`. Reply in the thread to follow up."
)
# Slash command replies go through the response_url, which Slack allows five times.
MAX_COMMAND_MESSAGES = 4
# Used when the settings have no such limits (the HTTP API's settings, when present, win).
# Longer threads are read page by page up to this many messages.
MAX_THREAD_MESSAGES = 400


def friendly_error(exc: BaseException) -> str:
    """A short message for Slack users, the one place Slack words the service's errors
    (service/errors.py); the details go to the log."""
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


def drop_retries(req: BoltRequest, next: Callable[[], Any]) -> Any:
    """Acknowledge Slack's retries without running anything: the first delivery was
    acknowledged in time and its lazy listener is answering (or has answered)."""
    retry = req.headers.get("x-slack-retry-num")
    if retry:
        reason = (req.headers.get("x-slack-retry-reason") or ["?"])[0]
        log.info("slack: dropped retry %s (%s)", retry[0], reason)
        return BoltResponse(status=200, body="")
    return next()


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

    # ---- the work -----------------------------------------------------------------

    def answer(self, text: str, history: list[HistoryMessage]) -> Answer:
        question = parse_request(AskBody, question=text, history=history)
        # Said up front here: an empty store would otherwise read as "not covered".
        require_articles(self.nd)
        return self.answers.answer(question)

    def _answer_message(self, text: str, history: list[HistoryMessage]) -> tuple[list[Block], str]:
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
        blocks = answer_blocks(
            answer, public_url=self.settings.public_url, llm_model=self._llm_model
        )
        return blocks, answer_text(answer)

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
                blocks, text = self._answer_message(question, history)
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
        if not text and name != "/summarize":
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
        if not text and name != "/summarize":
            return  # the acknowledgement showed the usage
        ephemeral = False
        try:
            if name == "/ask":
                blocks, fallback = self._answer_message(text, [])
                ephemeral = self.settings.slack_ephemeral
            elif name == "/summarize":
                blocks, fallback = self._summary_message(text)
            elif name == "/brief":
                blocks, fallback = self._briefing_message(text)
            else:
                blocks, fallback = text_blocks(HELP), HELP
        except Exception as exc:
            _log_failure(name or "command", exc)
            message = friendly_error(exc)
            self._respond(respond, "ephemeral", text_blocks(message), message)
            return
        response_type = "ephemeral" if ephemeral else "in_channel"
        for blocks_part in split_messages(blocks, max_messages=MAX_COMMAND_MESSAGES):
            self._respond(respond, response_type, blocks_part, fallback)

    def _summary_message(self, topic: str) -> tuple[list[Block], str]:
        req = parse_request(SummaryBody, topic=topic or None)
        require_articles(self.nd)
        summary = self.summaries.summarize(req)
        blocks = summary_blocks(
            summary, public_url=self.settings.public_url, llm_model=self._llm_model
        )
        return blocks, summary_text(summary)

    def _briefing_message(self, topic: str) -> tuple[list[Block], str]:
        req = parse_request(BriefingBody, topic=topic)
        require_articles(self.nd)
        briefing = self.briefings.brief(req)
        blocks = briefing_blocks(
            briefing, public_url=self.settings.public_url, llm_model=self._llm_model
        )
        return blocks, briefing_text(briefing)

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


def build_app(
    newsdesk: Newsdesk,
    *,
    client: WebClient | None = None,
    executor: Executor | None = None,
) -> App:
    """The bolt App for this Newsdesk; nothing is kept at module level.

    ``client`` replaces the WebClient made from ``slack_bot_token`` (tests point one at
    a local stub); ``executor`` runs the lazy listeners (default: 8 threads).
    """
    settings = newsdesk.settings
    token = _secret(settings.slack_bot_token)
    if client is None and not token:
        raise ValueError("the Slack bot needs NEWSDESK_SLACK_BOT_TOKEN")
    bot = SlackBot(newsdesk)
    app = App(
        name="newsdesk",
        token=None if client is not None else token,
        client=client,
        signing_secret=_secret(settings.slack_signing_secret) or "",
        # Ack first, then the lazy listeners do the slow part in the executor.
        process_before_response=True,
        # auth.test happens on the first request instead of at start-up.
        token_verification_enabled=False,
        before_authorize=drop_retries,
        listener_executor=executor
        or ThreadPoolExecutor(max_workers=8, thread_name_prefix="newsdesk-slack"),
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
    status: int
    code: str
    message: str

    def response(self) -> Response:
        # The API's error shape, built here so this module need not import the API package.
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}}, status_code=self.status
        )


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

    class ThreadedSlackRequestHandler(SlackRequestHandler):
        """bolt's handler, behind our own signature and body checks, with dispatch (ack,
        the first auth.test) run in the threadpool instead of blocking the event loop."""

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
            return to_starlette_response(await run_in_threadpool(self.app.dispatch, bolt_req))

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
    newsdesk: Newsdesk, *, client: WebClient | None = None
) -> SocketModeHandler:
    """A Socket Mode handler for the bot (not yet connected)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    app_token = _secret(newsdesk.settings.slack_app_token)
    if not app_token:
        raise ValueError("Socket Mode needs NEWSDESK_SLACK_APP_TOKEN (xapp-…)")
    return SocketModeHandler(build_app(newsdesk, client=client), app_token=app_token)


def run_socket_mode(newsdesk: Newsdesk) -> None:
    """Connect to Slack over Socket Mode and serve until interrupted (blocks)."""
    handler = socket_mode_handler(newsdesk)
    log.info("slack: starting Socket Mode")
    handler.start()
