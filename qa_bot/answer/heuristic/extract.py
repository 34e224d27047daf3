"""The extractor: every window of every sentence of the top passages scored, the best one
returned verbatim with its span and a confidence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from qa_bot.lexical import WordCutter
from qa_bot.types import ScoredChunk

from ..compose import Extraction
from ..qtype import QType
from ..spans import Span, find_spans
from ..text import sentence_bounds
from .align import Alignment, anchor_hits, wh_span
from .question import Question
from .scoring import (
    WEIGHTS,
    Matches,
    TermWeights,
    best_span,
    coverage,
    features,
    is_in_question,
    passage_weights,
    sentence_dense,
    subject_penalised,
)
from .terms import predicate_terms, says, term_match, term_positions
from .windows import clause_windows, final_window, sentence_windows

__all__ = ["extract_answer"]

_PAIR_TYPES = (
    QType.REASON,
    QType.DESCRIPTION,
    QType.LIST,
    QType.OTHER,
)  # may answer with two sentences
_WH_BASE = 0.1  # fit of the wh-slot span: base + gain * match quality
_WH_GAIN = 0.6
# confidence = _C0 + fit + span + proximity + margin over the runner-up sentence
_C0, _C_FIT, _C_SPAN, _C_PROX, _C_MARGIN = 0.05, 0.45, 0.1, 0.05, 0.45
_C_MSCALE = 2.0  # score margin that counts as fully clear
_C_NO_PREDICATE = 0.3  # figure/date answer that says nothing of the event asked about


def extract_answer(
    question: str,
    passages: Sequence[ScoredChunk],
    *,
    max_chars: int = 120,
    top_k: int = 5,
    weights: Sequence[float] = WEIGHTS,
    tokenizer: WordCutter | None = None,
) -> Extraction | None:
    """The best short verbatim answer to ``question`` from the top ``passages``, or None.

    Every sentence is scored by how much of the question it repeats (content terms, and
    character-level alignment with the question's wording), by the span standing where the
    question has its wh-phrase, by a typed span of the wanted kind and by the passage's
    retrieval rank. Short types (figures, dates, names, places) return the clause(s) with
    the span; the others return the full sentence (both within ``max_chars``).

    ``confidence`` in [0, 1]: how much of the question is found around the answer and
    whether the answer slot was found; unrelated passages get low values.

    ``tokenizer`` segments the question and list items: the service passes its index's
    (with the corpus's user words); None takes ``qa_bot.lexical.default_tokenizer``.
    """
    passages = list(passages)[:top_k]
    if not passages or not question.strip():
        return None
    ctx = _Context.of(Question.of(question, tokenizer), passages, max_chars)
    best, runner = _best_window(ctx, weights)
    if best is None:
        return None
    text = passages[best.pidx].chunk.text
    start, end = final_window(text, best.start, best.end, best.span, ctx.q.short, max_chars)
    hl = None if best.span is None else (best.span.start - start, best.span.end - start)
    conf = _confidence(ctx, best, start, runner)
    return Extraction(text[start:end], hl, best.pidx, ctx.q.qtype, round(conf, 4), start)


@dataclass(frozen=True)
class _Context:
    """The question over these passages: what every window's score draws on."""

    q: Question
    passages: list[ScoredChunk]
    max_chars: int
    tw: TermWeights
    pweights: list[float]
    sent_lists: list[tuple[tuple[int, int], ...]]
    dense: list[list[float]]
    alignment: Alignment

    @classmethod
    def of(cls, q: Question, passages: list[ScoredChunk], max_chars: int) -> _Context:
        sent_lists = [sentence_bounds(sc.chunk.text) for sc in passages]
        return cls(
            q,
            passages,
            max_chars,
            TermWeights.of(q.terms, passages),
            passage_weights(passages),
            sent_lists,
            sentence_dense(passages, sent_lists),
            Alignment.of(q.shape, [sc.chunk.text for sc in passages], sent_lists),
        )


@dataclass
class _Candidate:
    score: float
    pidx: int
    start: int
    end: int
    span: Span | None
    coverage: float  # of the question's terms by the window and its context
    prox: float
    align: float


@dataclass(frozen=True)
class _Found:
    """A sentence's typed spans (and wh-slot span), the spans that repeat the question's
    subject, and the question terms' occurrences ``(offset, length, term)``."""

    spans: list[Span]
    subj: set[tuple[int, int]]
    occ: list[tuple[int, int, str]]

    def __add__(self, other: _Found) -> _Found:
        return _Found(self.spans + other.spans, self.subj | other.subj, self.occ + other.occ)


class _Passage:
    """One candidate passage read for the question: term matches, the question's anchors,
    and each sentence's spans (computed once: pair windows reuse a neighbour's)."""

    def __init__(
        self, q: Question, sc: ScoredChunk, sentences: tuple[tuple[int, int], ...]
    ) -> None:
        self.q = q
        self.text = sc.chunk.text
        self.sentences = sentences
        title = sc.chunk.title or ""
        self._title_m = {t.text: term_match(t, title) for t in q.terms}
        self._passage_m = {t.text: term_match(t, self.text) for t in q.terms}
        self._lhits = anchor_hits(q.shape.left, self.text, True)
        self._rhits = anchor_hits(q.shape.right, self.text, False)
        self._found: dict[int, _Found] = {}

    def matches(self, si: int) -> Matches:
        ss, se = self.sentences[si]
        # neighbourhood: the sentences around it (context the clause relies on)
        ns = self.sentences[max(0, si - 1)][0]
        ne = self.sentences[min(len(self.sentences) - 1, si + 1)][1]
        terms = self.q.terms
        return Matches(
            {t.text: term_match(t, self.text[ss:se]) for t in terms},
            {t.text: term_match(t, self.text[ns:ne]) for t in terms},
            self._passage_m,
            self._title_m,
        )

    def found(self, si: int) -> _Found:
        if si not in self._found:
            self._found[si] = self._find(si)
        return self._found[si]

    def _find(self, si: int) -> _Found:
        ss, se = self.sentences[si]
        sent = self.text[ss:se]
        wh = wh_span(self.text, ss, se, self._lhits, self._rhits)
        spans, subj = self._typed_spans(ss, sent, wh) if self.q.typed else ([], set())
        if wh is not None:
            spans.append(self._wh_slot(wh))
        occ = [(ss + p, len(t), t) for t in self.q.qterms for p in term_positions(t, sent)]
        return _Found(spans, subj, occ)

    def _typed_spans(
        self, ss: int, sent: str, wh: tuple[int, int, float] | None
    ) -> tuple[list[Span], set[tuple[int, int]]]:
        q = self.q
        spans: list[Span] = []
        subj: set[tuple[int, int]] = set()
        for sp in find_spans(sent, q.qtype, q.tokenizer):
            g = sent[sp.start : sp.end]
            if is_in_question(g, q.text):
                continue
            strength = sp.strength
            if wh is not None and ss + sp.start < wh[1] and ss + sp.end > wh[0]:
                strength += 0.4 * wh[2]
            # (a full name asked for contains the short name the question uses)
            if q.qtype is QType.ENTITY and q.sub != "name" and subject_penalised(g, q.qterms):
                subj.add((ss + sp.start, ss + sp.end))
            spans.append(Span(ss + sp.start, ss + sp.end, sp.kind, strength, sp.sub))
        return spans, subj

    def _wh_slot(self, wh: tuple[int, int, float]) -> Span:
        q = self.q
        strength = 0.1 + 0.3 * wh[2] if q.figure_or_date else _WH_BASE + _WH_GAIN * wh[2]
        if q.short and subject_penalised(self.text[wh[0] : wh[1]], q.qterms):
            strength *= 0.6
        return Span(wh[0], wh[1], q.qtype, strength, "wh")


def _best_window(ctx: _Context, weights: Sequence[float]) -> tuple[_Candidate | None, float]:
    """The best-scoring window, and the best score of any other sentence's windows."""
    best: _Candidate | None = None
    best_key = (-1, -1)
    sent_best: dict[tuple[int, int], float] = {}
    for pidx, sc in enumerate(ctx.passages):
        if not sc.chunk.text.strip():
            continue
        passage = _Passage(ctx.q, sc, ctx.sent_lists[pidx])
        for si in range(len(passage.sentences)):
            for cand in _sentence_candidates(ctx, passage, pidx, si, weights):
                key = (pidx, si)
                if cand.score > sent_best.get(key, -1e9):
                    sent_best[key] = cand.score
                if best is None or cand.score > best.score + 1e-9:
                    best, best_key = cand, key
    if best is None:
        return None, 0.0
    runner = max((v for k, v in sent_best.items() if k != best_key), default=best.score - 1.0)
    return best, runner


def _sentence_candidates(
    ctx: _Context, passage: _Passage, pidx: int, si: int, weights: Sequence[float]
) -> Iterator[_Candidate]:
    """Every window of sentence ``si``, scored: the whole sentence (and, for types that
    may answer with two, joined with a neighbour) for statements; clause windows for
    phrases and for sentences too long to return whole."""
    ss, se = passage.sentences[si]
    found = passage.found(si)
    if not ctx.q.short and se - ss <= ctx.max_chars + 1:
        # the cause is often told in the sentence before or after the one that restates
        # the question
        joined = sentence_windows(
            passage.text, passage.sentences, si, ctx.max_chars, ctx.q.qtype in _PAIR_TYPES
        )
        for _, _, sj in joined:
            if sj is not None:
                found = found + passage.found(sj)
        windows = [(a, b) for a, b, _ in joined]
    else:
        windows = clause_windows(passage.text, ss, se, ctx.max_chars, found.spans)
    m = passage.matches(si)
    for ws, we in windows:
        yield _score_window(ctx, passage, pidx, si, (ws, we), m, found, weights)


def _score_window(
    ctx: _Context,
    passage: _Passage,
    pidx: int,
    si: int,
    window: tuple[int, int],
    m: Matches,
    found: _Found,
    weights: Sequence[float],
) -> _Candidate:
    q, text = ctx.q, passage.text
    ws, we = window
    ss, se = passage.sentences[si]
    inner = ss <= ws and we <= se
    cov, ctx_cov = coverage(ctx.tw, text[ws:we], inner, m)
    occ = [o for o in found.occ if ws <= o[0] and o[0] + o[1] <= we]
    inside = [sp for sp in found.spans if ws <= sp.start and sp.end <= we]
    if q.figure_or_date and any(sp.sub != "wh" for sp in inside):
        # a figure or date question is answered by the figure or date itself
        inside = [sp for sp in inside if sp.sub != "wh"]
    span, fit, prox = best_span(q, text, inside, found.subj, occ)
    align = ctx.alignment.score[pidx][si]
    feats = features(
        q,
        pw=ctx.pweights[pidx],
        coverage=cov,
        align=align,
        fit=fit,
        prox=prox,
        dense=ctx.dense[pidx][si],
        length=we - ws,
        span=span,
        wh_q=max((sp.strength for sp in inside if sp.sub == "wh"), default=0.0),
        first=si == 0,
        pair=not (inner or q.qtype is QType.REASON),
        rank=pidx,
        align_top=ctx.alignment.best > 0 and align >= ctx.alignment.best - 1e-9,
        lcs=ctx.alignment.longest[pidx][si],
    )
    score = sum(w * f for w, f in zip(weights, feats, strict=True))
    return _Candidate(score, pidx, ws, we, span, ctx_cov, prox, align)


def _confidence(ctx: _Context, best: _Candidate, start: int, runner: float) -> float:
    """How much of the question is found around the answer, whether its slot was found,
    and how clearly its sentence beats the runner-up sentence."""
    q = ctx.q
    has_span = 0.0
    if best.span is not None:
        has_span = 0.6 if best.span.sub == "wh" else 1.0
    elif not q.typed:
        has_span = 0.4
    fit = max(min(1.0, best.coverage), best.align)
    margin = min(1.0, max(0.0, best.score - runner) / _C_MSCALE)
    conf = _C0 + _C_FIT * fit + _C_SPAN * has_span + _C_PROX * best.prox + _C_MARGIN * margin
    # a question whose terms barely appear is probably not answered here at all
    if best.coverage < 0.3:
        conf *= 0.6
    if q.figure_or_date and not _tells_event(
        q, ctx.passages[best.pidx].chunk.text, ctx.sent_lists[best.pidx], start
    ):
        conf *= _C_NO_PREDICATE
    return max(0.0, min(1.0, conf))


def _tells_event(q: Question, text: str, sents: Sequence[tuple[int, int]], start: int) -> bool:
    """The answer's sentence (or the one before) names the event a figure or date question
    asks about, when the question names one."""
    preds = predicate_terms(q.text, q.tokenizer)
    if not preds:
        return True
    si = next((i for i, (a, b) in enumerate(sents) if a <= start < b), 0)
    near = text[sents[max(0, si - 1)][0] : sents[si][1]] if sents else text
    return any(says(p, near) for p in preds)
