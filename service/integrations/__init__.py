"""Newsdesk inside other frameworks (LangChain: ``service.integrations.langchain``)."""
