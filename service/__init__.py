"""Newsdesk: cited answers, neutral summaries and briefings over a news corpus."""
