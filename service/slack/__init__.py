"""Newsdesk in Slack: mentions, DMs and /ask /summarize /brief, answered in threads with
cited spans (slack-bolt; HTTP mode mounted in the FastAPI app, or Socket Mode)."""

from service.slack.app import (
    SlackBot,
    build_app,
    mount_slack,
    run_socket_mode,
    slack_http_configured,
    socket_mode_handler,
)

__all__ = [
    "SlackBot",
    "build_app",
    "mount_slack",
    "run_socket_mode",
    "slack_http_configured",
    "socket_mode_handler",
]
