"""``qa-bot eval``: answer quality and latency on a question set.

Question files:
- JSONL, one object per line: ``{"q": str, "answer": str | null, ...}`` (``answer`` is
  a verbatim substring of a post, or null when the corpus cannot answer);
- SQuAD-format JSON (e.g. CMRC 2018): each context becomes one post of a generated
  corpus, so no ``--corpus`` is needed.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .answer.metrics import cmrc_em, cmrc_f1
from .types import Answer

if TYPE_CHECKING:
    from .service import QAService

MAX_ANSWER_CHARS = 120


@dataclass(frozen=True)
class Question:
    q: str
    answers: tuple[str, ...]  # empty: the corpus cannot answer


@dataclass
class Outcome:
    question: Question
    answer: Answer

    @property
    def answerable(self) -> bool:
        return bool(self.question.answers)

    @property
    def answer_hit(self) -> bool:
        a = self.answer.answer
        return (
            a is not None
            and len(a) <= MAX_ANSWER_CHARS
            and any(g in a for g in self.question.answers)
        )

    @property
    def span(self) -> str | None:
        """The highlighted span (the whole answer when nothing is highlighted)."""
        a, h = self.answer.answer, self.answer.highlight
        if a is None or self.answer.abstained:
            return None
        return a[h[0] : h[1]] if h else a

    def passage_hit(self, k: int) -> bool:
        return any(
            g in s.text for s in self.answer.sources[:k] for g in self.question.answers
        )


@dataclass
class Report:
    questions: int
    answerable: int
    unanswerable: int
    answer_hit: float
    passage_hit_at_1: float
    passage_hit_at_3: float
    # CMRC 2018 official measure on the highlighted span, 0..100; abstentions score 0
    span_em: float
    span_f1: float
    abstained_unanswerable: int
    false_abstentions: int
    latency_ms_p50: float
    latency_ms_p95: float
    failures: list[dict] = field(default_factory=list)

    def to_json(self, *, with_failures: bool = False) -> dict:
        d = asdict(self)
        if not with_failures:
            d.pop("failures")
        return d


def load_questions(path: Path) -> tuple[list[Question], list[tuple[str, str]] | None]:
    """Questions, plus (title, context) posts when the file is SQuAD-format."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{") and '"data"' in stripped[:200]:
        data = json.loads(text)
        questions: list[Question] = []
        posts: list[tuple[str, str]] = []
        for article in data["data"]:
            title = article.get("title", "")
            for para in article["paragraphs"]:
                posts.append((title, para["context"]))
                for qa in para["qas"]:
                    golds = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", []) if a["text"]))
                    questions.append(Question(qa["question"], golds))
        return questions, posts
    questions = []
    for line in text.splitlines():
        if line.strip():
            rec = json.loads(line)
            gold = rec.get("answer")
            questions.append(Question(rec["q"], (gold,) if gold else ()))
    return questions, None


def write_posts_corpus(posts: list[tuple[str, str]], corpus_dir: Path) -> None:
    """One Jekyll post per context (SQuAD paragraphs), written once."""
    marker = corpus_dir / ".complete"
    if marker.exists():
        return
    posts_dir = corpus_dir / "_posts"
    posts_dir.mkdir(parents=True, exist_ok=True)
    for i, (title, context) in enumerate(posts):
        safe_title = title.replace('"', "'")
        body = "\n\n".join(p for p in context.split("\n") if p.strip())
        (posts_dir / f"2018-01-01-ctx{i:05d}.md").write_text(
            f'---\nlayout: post\ntitle: "{safe_title}"\ndate: 2018-01-01 00:00:00 +0800\n'
            f"categories: cmrc\n---\n{body}\n",
            encoding="utf-8",
        )
    marker.write_text("ok", encoding="utf-8")


def eval_dirs(cache_dir: Path, questions_file: Path, corpus: Path | None) -> tuple[Path, Path]:
    """Stable per-dataset folders, so a second eval reuses its index."""
    key_src = str(corpus.resolve()) if corpus else hashlib.sha256(questions_file.read_bytes()).hexdigest()
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    base = cache_dir / "eval" / key
    return base / "corpus", base / "index"


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    qs = statistics.quantiles(values, n=100, method="inclusive")
    return qs[int(p) - 1]


def run_eval(
    questions: Iterable[Question],
    ask: Callable[[str], Answer],
) -> Report:
    outcomes = [Outcome(q, ask(q.q)) for q in questions]
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    lat = sorted(o.answer.timing_ms.get("total", 0.0) for o in outcomes)
    n = max(len(answerable), 1)
    failures = [
        {
            "q": o.question.q,
            "gold": list(o.question.answers),
            "answer": o.answer.answer,
            "abstained": o.answer.abstained,
            "span": o.span,
            "top_passage": o.answer.sources[0].text[:200] if o.answer.sources else None,
        }
        for o in outcomes
        if (o.answerable and not o.answer_hit) or (not o.answerable and not o.answer.abstained)
    ]
    return Report(
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answer_hit=round(sum(o.answer_hit for o in answerable) / n, 4),
        passage_hit_at_1=round(sum(o.passage_hit(1) for o in answerable) / n, 4),
        passage_hit_at_3=round(sum(o.passage_hit(3) for o in answerable) / n, 4),
        span_em=round(100 * sum(cmrc_em(o.question.answers, o.span) for o in answerable) / n, 2),
        span_f1=round(100 * sum(cmrc_f1(o.question.answers, o.span) for o in answerable) / n, 2),
        abstained_unanswerable=sum(o.answer.abstained for o in unanswerable),
        false_abstentions=sum(o.answer.abstained for o in answerable),
        latency_ms_p50=round(_pct(lat, 50), 2),
        latency_ms_p95=round(_pct(lat, 95), 2),
        failures=failures,
    )


def baseline_asker(service: QAService) -> Callable[[str], Answer]:
    """What a typical Chinese RAG stack answers, for side-by-side comparison.

    BM25 over jieba plus dense e5, fused 0.5/0.5 (no sentence rerank), then the single
    most similar sentence (e5 cosine) of the top 3 passages as the answer; never abstains.
    """
    import time

    import numpy as np

    from .types import Source

    def ask(question: str) -> Answer:
        t0 = time.perf_counter()
        retriever = service._current().retriever
        qvec = retriever.encoder.embed_queries([question])
        hits = retriever.search(question, 3, encoded=qvec)
        best: tuple[float, str] | None = None
        for h in hits:
            sc = retriever.sentences.scores(h.chunk.chunk_id, np.asarray(qvec).reshape(-1)) if retriever.sentences else None
            if sc is None:
                continue
            for (a, b), sim in zip(sc.spans, sc.sims, strict=True):
                if best is None or float(sim) > best[0]:
                    best = (float(sim), h.chunk.text[a:b].strip())
        sources = [
            Source(h.chunk.article_path, h.chunk.title, h.chunk.date, h.chunk.url, h.chunk.text, h.score)
            for h in hits
        ]
        return Answer(
            question=question,
            answer=best[1] if best else None,
            abstained=best is None,
            sources=sources,
            timing_ms={"total": (time.perf_counter() - t0) * 1000},
        )

    return ask
