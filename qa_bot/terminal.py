"""Answers for a terminal (``qa-bot ask`` and ``chat``): rich text, sources by article."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .types import Answer, Source

__all__ = ["AnswerInterrupts", "group_sources", "render_answer"]

ABSTAINED = "新闻库中没有找到能回答这个问题的内容。"
QUOTE_CHARS = 160


@dataclass
class ArticleSources:
    """One article and the passages of it that were retrieved, in rank order."""

    number: int
    first: Source
    passages: list[str] = field(default_factory=list)


def group_sources(sources: list[Source]) -> list[ArticleSources]:
    """Sources grouped by article, articles in the order of their best passage."""
    groups: dict[str, ArticleSources] = {}
    for src in sources:
        g = groups.setdefault(src.path, ArticleSources(len(groups) + 1, src))
        g.passages.append(src.text)
    return list(groups.values())


def _one_line(text: str, limit: int = QUOTE_CHARS) -> str:
    # chunks join a heading paragraph to its body with a newline: one line reads better
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def answer_text(answer: Answer) -> Text:
    """``答：…`` with the highlighted span in bold."""
    text = Text("答：", style="bold green")
    a = answer.answer or ""
    if answer.highlight:
        s, e = answer.highlight
        text.append(a[:s])
        text.append(a[s:e], style="bold yellow")
        text.append(a[e:])
    else:
        text.append(a)
    return text


def render_answer(answer: Answer, console: Console, *, max_sources: int = 3) -> None:
    """The answer with its key span in bold, then each source article once with its passages."""
    if answer.abstained or answer.answer is None:
        console.print(f"[yellow]{ABSTAINED}[/] 最接近的文章：")
    else:
        console.print(answer_text(answer))
    for g in group_sources(answer.sources[:max_sources]):
        date = (g.first.date or "")[:10]
        console.print(f"[bold]{g.number}. {escape(g.first.title)}[/]  [dim]{date}[/]")
        if g.first.url:
            console.print(f"   [link={g.first.url}]{escape(g.first.url)}[/link]")
        for passage in g.passages:
            console.print(f"   [dim]{escape(_one_line(passage))}[/]")


class AnswerInterrupts:
    """Ctrl-C (SIGINT) cancels the answer being computed and nothing else.

    The default handler raises KeyboardInterrupt wherever the signal lands, including the
    few instructions between the prompt and the answer, which ends the session (seen in CI
    with a signal every 0.1 s). This handler raises only inside ``answering()``, so the
    ``except`` around that block is the one place a Ctrl-C is met. Elsewhere the signal is
    dropped: at a plain prompt the terminal has already discarded the typed line, and
    prompt_toolkit reads Ctrl-C as a key, not a signal."""

    def __init__(self) -> None:
        self._answering = False
        self._previous: object = None

    def __enter__(self) -> AnswerInterrupts:
        previous = signal.getsignal(signal.SIGINT)
        # a shell that started us in the background ignores SIGINT for us: keep it so
        if previous is not signal.SIG_IGN:
            self._previous = previous
            signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self._answering:
            raise KeyboardInterrupt

    @contextmanager
    def answering(self) -> Iterator[None]:
        try:  # set inside the try: a signal right after it still finds the flag reset
            self._answering = True
            yield
        finally:
            self._answering = False
