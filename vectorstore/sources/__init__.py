"""Following news sources: feeds, news sitemaps and single pages, fetched politely over
HTTP and handed to the indexer as articles whose id is their canonical URL.

``identity`` normalises URLs, ``fetch`` and ``robots`` do the HTTP, ``feeds`` and
``pages`` read what came back, ``registry`` keeps each source's state and its lease, and
``poller`` ties them together. Like the rest of ``vectorstore`` it imports nothing from
``service``: its settings arrive as ``SourcesConfig``.
"""
