"""Per-post limits, the per-post deadline and the errors ingest raises.

A corpus arrives by ``git pull`` from people we do not control, so every post is
parsed under limits: one post may be skipped, but it can never stop the update,
exhaust memory or take minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class PostError(Exception):
    """One post cannot be ingested; ``reason`` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CorpusError(Exception):
    """The corpus as a whole is unusable (missing dir, no posts, no readable post)."""


@dataclass(frozen=True)
class IngestLimits:
    """What one post may cost. Each field has a setting (``QA_BOT_<FIELD>``, upper case)."""

    #: bytes read from one file; a bigger file is skipped unread
    max_post_bytes: int = 1024 * 1024
    #: paragraphs of one post (body and digest together)
    max_post_paragraphs: int = 2000
    #: passages of one post, as the chunker cuts them counting one token per character
    max_post_chunks: int = 300
    #: characters of the YAML front matter with every alias expanded ("billion laughs")
    max_front_matter_chars: int = 100_000
    #: nesting of HTML elements, and of YAML lists and mappings
    max_nesting_depth: int = 256
    #: HTML tags of one post: the HTML parser's cost grows with tags times open elements
    max_html_tags: int = 10_000
    #: wall-clock time to parse one post
    max_post_seconds: float = 10.0


class Deadline:
    """The per-post time limit, checked by the parsing loops between steps."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._end:
            raise PostError(
                f"took longer than {self.seconds:g}s to parse (limit QA_BOT_MAX_POST_SECONDS)"
            )
