"""Training data for the reader: SQuAD-format files → examples → model windows.

Used by ``scripts/train_reader.py``; kept in the package so the script calls public
functions only and the preparation is tested like the rest of the code.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa_bot.sentences import sentence_spans

from .reader import token_span

__all__ = [
    "ConversionReport",
    "QAExample",
    "encode_for_training",
    "load_squad",
    "make_negatives",
    "to_simplified",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QAExample:
    """One question over one context; ``answers`` holds (text, char start); empty = no answer."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]

    @property
    def golds(self) -> list[str]:
        return [a for a, _ in self.answers]


@dataclass(frozen=True)
class ConversionReport:
    examples: int
    moved: int  # answers whose offset changed after conversion and was found again
    dropped: int  # answers that could not be located after conversion


def load_squad(path: Path) -> list[QAExample]:
    """Every question of a SQuAD-format file; an answer not at its offset is moved to the
    nearest occurrence of its text, and a question none of whose answers occur is skipped."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: list[QAExample] = []
    bad = 0
    for article in data["data"]:
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                answers = tuple(
                    (a["text"], at)
                    for a in qa.get("answers", [])
                    if a["text"]
                    and (at := _relocate(ctx, a["text"], int(a["answer_start"]))) is not None
                )
                if not answers and qa.get("answers"):
                    bad += 1
                    continue
                out.append(QAExample(str(qa["id"]), qa["question"], ctx, answers))
    if bad:
        log.warning("%s: %d questions skipped, no answer in the context", path, bad)
    return out


def _relocate(converted: str, text: str, guess: int) -> int | None:
    """Offset of ``text`` in ``converted`` nearest to ``guess``, or None."""
    if converted[guess : guess + len(text)] == text:
        return guess
    hits = []
    i = converted.find(text)
    while i >= 0:
        hits.append(i)
        i = converted.find(text, i + 1)
    return min(hits, key=lambda h: abs(h - guess)) if hits else None


def to_simplified(
    examples: Sequence[QAExample], convert: Callable[[str], str]
) -> tuple[list[QAExample], ConversionReport]:
    """Examples converted by ``convert`` (OpenCC t2s), answers re-located and checked.

    OpenCC converts phrases, not just characters, so an offset is recomputed from the
    converted prefix and verified; an answer that no longer sits there is searched for
    nearby, and dropped (with its question, if it was the only one) when absent.
    """
    memo: dict[str, str] = {}

    def conv(s: str) -> str:
        if s not in memo:
            memo[s] = convert(s)
        return memo[s]

    out, moved, dropped = [], 0, 0
    for ex in examples:
        ctx = conv(ex.context)
        answers = []
        for text, start in ex.answers:
            t = convert(text)
            guess = len(convert(ex.context[:start]))
            at = _relocate(ctx, t, guess)
            if at is None:
                dropped += 1
                continue
            moved += at != guess
            answers.append((t, at))
        if ex.answers and not answers:
            continue
        out.append(QAExample(ex.id, convert(ex.question), ctx, tuple(answers)))
    return out, ConversionReport(len(out), moved, dropped)


def _without_answer_sentence(ex: QAExample) -> str | None:
    start = ex.answers[0][1]
    end = start + len(ex.answers[0][0])
    spans = sentence_spans(ex.context)
    kept = [ex.context[s:e] for s, e in spans if e <= start or s >= end]
    rest = "".join(kept)
    if len(kept) == len(spans) or not rest.strip() or any(a in rest for a in ex.golds):
        return None
    return rest


def _bigrams(s: str) -> set[str]:
    return {s[i : i + 2] for i in range(len(s) - 1)}


def make_negatives(
    examples: Sequence[QAExample], ratio: float, rng: random.Random, *, pool: int = 40
) -> list[QAExample]:
    """Unanswerable pairs, SQuAD 2.0 style, about ``ratio`` × len(examples) in all.

    Half pair a question with another paragraph (the most question-like of ``pool``
    random ones, so the reader learns to refuse topical text, not only unrelated text);
    half with its own paragraph minus the sentence that holds the answer.
    """
    contexts = sorted({ex.context for ex in examples})
    out: list[QAExample] = []
    for ex in examples:
        if not ex.answers or rng.random() >= ratio:
            continue
        if rng.random() < 0.5:
            rest = _without_answer_sentence(ex)
            if rest is not None:
                out.append(QAExample(ex.id + "-minus", ex.question, rest, ()))
                continue
        qb = _bigrams(ex.question)
        others = [c for c in rng.sample(contexts, min(pool, len(contexts))) if c != ex.context]
        others = [c for c in others if not any(a in c for a in ex.golds)]
        if others:
            best = max(others, key=lambda c: len(qb & _bigrams(c)))
            out.append(QAExample(ex.id + "-other", ex.question, best, ()))
    return out


def encode_for_training(
    tokenizer: object,
    examples: Iterable[QAExample],
    *,
    max_length: int,
    stride: int,
    rng: random.Random,
) -> list[dict[str, list[int] | int]]:
    """One window per example: a random window holding the answer, or for an unanswerable
    example a random window labelled with the null position (token 0)."""
    feats: list[dict[str, list[int] | int]] = []
    for ex in examples:
        enc = tokenizer(  # type: ignore[operator]
            ex.question,
            ex.context,
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        choices = []
        for w in range(len(enc["input_ids"])):
            seq_ids = enc.sequence_ids(w)
            if not ex.answers:
                choices.append((w, 0, 0))
                continue
            text, start = ex.answers[0]
            ctx = [i for i, sid in enumerate(seq_ids) if sid == 1]
            span = token_span(enc["offset_mapping"][w], ctx, start, start + len(text))
            if span:
                choices.append((w, *span))
        if not choices:
            continue
        w, s, e = rng.choice(choices)
        feats.append(
            {
                "input_ids": enc["input_ids"][w],
                "attention_mask": enc["attention_mask"][w],
                "start_positions": s,
                "end_positions": e,
            }
        )
    return feats
