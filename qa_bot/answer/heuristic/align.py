"""Character alignment of the question with passage sentences: how much of the question's
wording a sentence repeats, and the wh-slot (the text standing where the question has its
wh-phrase, between the sentence's matches of the question's left and right parts)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ...lexical import WordCutter
from ..text import CLAUSE_BREAKS, trim
from .terms import TAIL_PARTICLES, WH_RE, desc_focus

__all__ = ["Alignment", "QShape", "anchor_hits", "qshape", "wh_span"]

_Q_PUNCT_RE = re.compile(r"[\s，。？！、；：,.?!;:“”‘’\"'（）()《》<>【】\[\]…—·]+")
_DEF_FIRST_RE = re.compile(r"^(?:什么是|啥是|何谓|何为)(.+?)[？?。\s]*$")
_DEF_RE = re.compile(
    r"^(.{2,16}?)(?:的定义|的意思|指的?|是指|又称之?为?|也称|也叫|又叫|又名|别名|别称|简称|全称)?"
    r"(?:是|为)?(?:什么|啥)(?:意思)?[？?。\s]*$"
)
_W_TOPIC = 0.3  # alignment bonus: the sentence starts with what the question is about
_W_ELSEWHERE = 0.4  # question words found elsewhere in the passage count this much


@dataclass(frozen=True)
class QShape:
    """The question as text to align with a passage sentence.

    ``segs``: the question's pieces between wh-words and punctuation (for character
    coverage); ``left``/``right``: candidate ends of the text before the wh-phrase and
    starts of the text after it, each with a quality (longer, exact pieces are better).
    """

    segs: tuple[str, ...]
    total: int
    left: tuple[tuple[str, float], ...]
    right: tuple[tuple[str, float], ...]
    topic: str = ""  # what a description question is about: answers start with it


@lru_cache(maxsize=2048)
def qshape(question: str, tokenizer: WordCutter | None = None) -> QShape:
    q = question.strip()
    # "什么是X" / "何谓X" asks what "X是…" says
    d = _DEF_FIRST_RE.match(q)
    if d:
        q = d.group(1) + "是什么"
    focus = desc_focus(question, tokenizer)
    bare = WH_RE.sub(" ", q)
    if focus:
        bare = bare.replace(focus[0], " ")
    segs = tuple(x for x in _Q_PUNCT_RE.split(bare) if len(x) >= 2)
    left, right = _sides(q)
    topic = focus[1] if focus else ""
    d = _DEF_RE.match(q)
    if d and not topic:
        topic = d.group(1)  # "X是什么", "X又称什么": X's defining sentence starts with X
    return QShape(segs, sum(len(x) for x in segs), left, right, topic)


def _sides(q: str) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """The pieces of the text left and right of the wh-phrase, best first."""
    m = WH_RE.search(q)
    left: list[tuple[str, float]] = []
    right: list[tuple[str, float]] = []
    if m:
        lq = _Q_PUNCT_RE.split(q[: m.start()])[-1]
        rq = TAIL_PARTICLES.sub("", q[m.end() :])
        rq = _Q_PUNCT_RE.split(rq)[0] if rq else ""
        # a piece that is the whole of the question's side is strong evidence even if short
        for k in range(3):
            base = lq[: len(lq) - k]
            for n in range(min(12, len(base)), 1, -1):
                left.append((base[-n:], n - 1.5 * k + (2.0 if n == len(lq) else 0.0)))
        for k in range(4):
            base = rq[k:]
            for n in range(min(12, len(base)), 1, -1):
                right.append((base[:n], n - 1.0 * k + (2.0 if n == len(rq) else 0.0)))
    left.sort(key=lambda x: -x[1])
    right.sort(key=lambda x: -x[1])
    return tuple(left), tuple(right)


def _align_runs(shape: QShape, sent: str) -> tuple[tuple[int, int], ...]:
    """Runs ``(offset, length)`` of the question's characters (wh-words aside, offsets into
    the concatenated ``shape.segs``) covered by common substrings of length ≥ 2 with
    ``sent``, found greedily left to right, longest first."""
    runs = []
    off = 0
    for seg in shape.segs:
        i, n = 0, len(seg)
        while i < n - 1:
            if seg[i : i + 2] in sent:
                m = 2
                while i + m < n and seg[i : i + m + 1] in sent:
                    m += 1
                runs.append((off + i, m))
                i += m
            else:
                i += 1
        off += n
    return tuple(runs)


def _align_weights(runs: Sequence[tuple[int, int]], cw: Sequence[float]) -> list[float]:
    """Per question character: how well ``runs`` cover it (long common substrings count
    fully, bigrams partly), times ``cw`` (characters that most sentences share count less)."""
    out = [0.0] * len(cw)
    for i, m in runs:
        w = min(1.0, 0.2 + 0.2 * m)
        for k in range(i, i + m):
            out[k] = w * cw[k]
    return out


def _char_weights(
    shape: QShape, runs_by: Sequence[Sequence[Sequence[tuple[int, int]]]]
) -> list[float]:
    """Per question character: 1, less the more of the candidate sentences repeat it
    (the topic all passages share singles out no statement)."""
    n_sent = sum(len(x) for x in runs_by)
    if n_sent < 3:
        return [1.0] * shape.total
    df = [0] * shape.total
    for rl in runs_by:
        for runs in rl:
            for i, m in runs:
                for k in range(i, i + m):
                    df[k] += 1
    return [1.0 - 0.7 * d / n_sent for d in df]


def _sentence_align(
    aw: Sequence[float],
    pmax: Sequence[float],
    cw_total: float,
    topic: str,
    text: str,
    ss: int,
    se: int,
) -> float:
    """Alignment of a sentence with the question: its own matches, plus words of the
    question said elsewhere in the passage (often its subject, left implicit in later
    sentences), which count partly."""
    align = (
        sum(aw) + _W_ELSEWHERE * sum(max(0.0, p - a) for p, a in zip(pmax, aw, strict=True))
    ) / (cw_total or 1.0)
    if topic:
        ts, _ = trim(text, ss, se)
        if text.startswith(topic, ts):
            align += _W_TOPIC
        elif topic not in text[ss:se]:
            align *= 0.6
    return align


@dataclass(frozen=True)
class Alignment:
    """The question aligned with every sentence of the candidate passages.

    ``score[p][s]``: sentence ``s`` of passage ``p`` (weighted share of the question it
    repeats); ``longest[p][s]``: its longest common substring with the question;
    ``best``: the highest score over all sentences.
    """

    score: list[list[float]]
    longest: list[list[int]]
    best: float

    @classmethod
    def of(
        cls, shape: QShape, texts: Sequence[str], sent_lists: Sequence[Sequence[tuple[int, int]]]
    ) -> Alignment:
        runs_by = [
            [_align_runs(shape, text[a:b]) for a, b in sl]
            for text, sl in zip(texts, sent_lists, strict=True)
        ]
        cw = _char_weights(shape, runs_by)
        cw_total = sum(cw)
        score = []
        for text, sl, rl in zip(texts, sent_lists, runs_by, strict=True):
            aligned = [_align_weights(r, cw) for r in rl]
            pmax = (
                [max(col) for col in zip(*aligned, strict=True)] if aligned else [0.0] * shape.total
            )
            score.append(
                [
                    _sentence_align(aligned[si], pmax, cw_total, shape.topic, text, ss, se)
                    for si, (ss, se) in enumerate(sl)
                ]
            )
        longest = [[max((m for _, m in runs), default=0) for runs in rl] for rl in runs_by]
        return cls(score, longest, max((a for row in score for a in row), default=0.0))


def anchor_hits(pieces: Sequence[tuple[str, float]], text: str, at_end: bool) -> dict[int, float]:
    """Positions in ``text`` where a question piece ends (``at_end``) or starts, with the
    best quality of a piece found there."""
    out: dict[int, float] = {}
    for piece, qual in pieces:
        if qual < 2:
            continue
        i = text.find(piece)
        while i >= 0:
            pos = i + len(piece) if at_end else i
            if qual > out.get(pos, 0.0):
                out[pos] = qual
            i = text.find(piece, i + 1)
    return out


def wh_span(
    text: str, ss: int, se: int, lhits: dict[int, float], rhits: dict[int, float]
) -> tuple[int, int, float] | None:
    """The part of sentence ``text[ss:se]`` that stands where the question has its wh-phrase:
    between the best match of the question's left part and of its right part (or from the
    left match to the clause end / from the clause start to the right match), with the
    quality of the match in [0, 1]."""
    ls = [(p, q) for p, q in lhits.items() if ss <= p < se]
    rs = [(p, q) for p, q in rhits.items() if ss < p <= se]
    best: tuple[float, int, int] | None = None
    for lp, lq in ls:
        for rp, rq in rs:
            if 1 <= rp - lp <= 60 and not any(text[k] in "。！？!?；;" for k in range(lp, rp)):
                sc = lq + rq
                if best is None or sc > best[0]:
                    best = (sc, lp, rp)
        e = lp
        while e < se and text[e] not in CLAUSE_BREAKS:
            e += 1
        if e - lp >= 1 and (best is None or lq > best[0]):
            best = (lq, lp, e)
    for rp, rq in rs:
        b = rp
        while b > ss and text[b - 1] not in CLAUSE_BREAKS:
            b -= 1
        if rp - b >= 1 and (best is None or rq > best[0]):
            best = (rq, b, rp)
    if best is None:
        return None
    a, b = trim(text, best[1], best[2])
    if b <= a:
        return None
    return a, b, min(1.0, best[0] / 8.0)
