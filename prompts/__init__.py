"""Prompt templates (``*.md``), shipped in the wheel as package data and read with
``importlib.resources``; ``service/prompts.py`` loads them."""
