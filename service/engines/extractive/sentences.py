"""Articles as sentences: spans of the canonical text, so a sentence quoted is a citation."""

from __future__ import annotations

from dataclasses import dataclass

from vectorstore.sentences import sentence_spans
from vectorstore.store import StoredArticle

# Shorter than this is a headline, a byline or a caption; longer is a run-on the splitter
# could not cut (a list, a table). Neither reads as a claim. Hand-set with the engine.
PROSE_MIN_WORDS = 6
PROSE_MAX_WORDS = 90
_TERMINAL = (".", "!", "?", "”", '"', "’", "'", ")")


@dataclass(frozen=True)
class Sentence:
    article: StoredArticle
    start: int
    end: int
    position: int  # order within the article

    @property
    def text(self) -> str:
        return self.article.text[self.start : self.end]

    @property
    def key(self) -> tuple[str, int]:
        return (self.article.id, self.start)


def article_sentences(article: StoredArticle, lo: int = 0, hi: int | None = None) -> list[Sentence]:
    """Sentences of an article (or of its [lo, hi) slice) as spans of the canonical text."""
    text = article.text
    out: list[Sentence] = []
    for i, (s, e) in enumerate(sentence_spans(text)):
        if s >= lo and (hi is None or e <= hi):
            out.append(Sentence(article, s, e, i))
    return out


def is_prose(
    sentence: Sentence, min_words: int = PROSE_MIN_WORDS, max_words: int = PROSE_MAX_WORDS
) -> bool:
    """Whole sentences only: headlines, bylines and link lists make poor claims."""
    text = sentence.text
    n = len(text.split())
    return min_words <= n <= max_words and text.rstrip().endswith(_TERMINAL)
