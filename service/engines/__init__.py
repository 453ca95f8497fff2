"""Engines turn passages or articles into cited results.

``protocol`` is what every engine offers and the jobs it is handed; ``llm`` the LLM engine
(one pipeline, the reply schemas in ``llm_schemas``); ``extractive`` the no-LLM engine;
``fallback`` the LLM with the extractive engine behind it; ``results`` the envelope they
all fill the same way. ``service.context.Newsdesk.engine`` picks the one to use.
"""
