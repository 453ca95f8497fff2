"""The no-LLM engine (``engine``), split by job: words (``terms``), sentences
(``sentences``), their vectors (``vectors``), relevance (``scoring``), what gets picked
(``selection``), where sources differ (``disagreements``) and what a sentence can stand
for in a briefing (``sentence_roles``)."""
