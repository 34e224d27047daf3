"""The trained reader: a span-extraction head over multilingual-e5-small.

The question and each passage go through the model as ``<s> question </s></s> passage </s>``
windows (long passages in overlapping windows); every window yields start and end logits
per token. The best span across all windows of all passages wins; the null score (both
logits on ``<s>``, SQuAD 2.0 style) against it tells whether the passages answer at all.

Backends: ``onnx-int8`` (ONNX Runtime, int8 weights; the default: it loads without
importing torch or transformers, which keeps a one-shot ``qa-bot ask`` fast),
``torch-int8`` (torch dynamic quantization) and ``torch-float32`` (for measuring what
int8 costs). Tokenization is the ``tokenizers`` library's, shared by all three.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import CLAUSE_BREAKS, sentence_bounds, trim

__all__ = [
    "BACKENDS",
    "ONNX_INT8",
    "ReadSpan",
    "Reader",
    "Reading",
    "WindowLogits",
    "choose_span",
    "decode",
    "score_span",
    "token_span",
    "with_proposal",
]

log = logging.getLogger(__name__)

ONNX_INT8 = "model-int8.onnx"
BACKENDS = ("onnx-int8", "torch-int8", "torch-float32")

Logits = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ReadSpan:
    passage: int  # index into the passages read
    start: int  # character offsets inside that passage
    end: int
    score: float  # start logit + end logit


@dataclass(frozen=True)
class Reading:
    """What the model made of each passage read: its best span and its null score."""

    spans: tuple[ReadSpan | None, ...]  # per passage, in the order given
    nulls: tuple[float, ...]  # per passage: the lowest null score over its windows

    @property
    def best(self) -> ReadSpan | None:
        """The span with the highest raw score over all passages."""
        return choose_span(self, 0.0)

    @property
    def null_score(self) -> float:
        return min(self.nulls) if self.nulls else 0.0

    def margin_of(self, span: ReadSpan | None) -> float:
        """``span``'s score minus the null score: > 0 means the model prefers an answer."""
        return -np.inf if span is None else span.score - self.null_score

    @property
    def margin(self) -> float:
        return self.margin_of(self.best)


def choose_span(reading: Reading, rank_penalty: float) -> ReadSpan | None:
    """The passage's best span with the highest score after the retrieval-rank prior."""
    found = [s for s in reading.spans if s is not None]
    if not found:
        return None
    return max(found, key=lambda s: s.score - rank_penalty * s.passage)


@dataclass(frozen=True)
class _Window:
    passage: int
    ids: list[int]
    offsets: list[tuple[int, int]]
    context: np.ndarray  # bool per token: part of the passage


def _best_in_window(
    start: np.ndarray,
    end: np.ndarray,
    ctx: np.ndarray,
    max_tokens: int,
    length_bonus: float = 0.0,
    sentence: np.ndarray | None = None,
    breaks: np.ndarray | None = None,
    clause_penalty: float = 0.0,
) -> tuple[int, int, float] | None:
    """(start token, end token, score) of the best span of context tokens in one window;
    ``length_bonus`` per extra token is added to the choice (a decoding prior), not to the
    score returned, which stays comparable with the null score. With ``sentence`` (an id
    per token) a span never crosses a sentence end: an answer is part of one sentence.
    ``clause_penalty`` is taken from the choice per clause break the span crosses
    (``breaks``: the running count of break tokens): "约30.67亿元，其中…占比100%" is two
    answers, and the model's best span often runs on into the next clause."""
    idx = np.flatnonzero(ctx)
    if idx.size == 0:
        return None
    scores = start[idx][:, None] + end[idx][None, :]
    n = idx.size
    band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), max_tokens)
    if sentence is not None:
        band &= sentence[idx][:, None] == sentence[idx][None, :]
    lengths = np.arange(n)[None, :] - np.arange(n)[:, None]
    prior = length_bonus * lengths
    if breaks is not None and clause_penalty:
        b = breaks[idx]
        prior = prior - clause_penalty * (b[None, :] - b[:, None])
    chosen = np.where(band, scores + prior, -np.inf)
    i, j = np.unravel_index(int(np.argmax(chosen)), chosen.shape)
    return int(idx[i]), int(idx[j]), float(scores[i, j])


@dataclass(frozen=True)
class WindowLogits:
    """One window's model output, enough to decode spans again without the model."""

    passage: int
    offsets: list[tuple[int, int]]
    context: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _sentence_ids(text: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """The sentence each token starts in (the splitter of the answer text)."""
    starts = np.array([b[0] for b in sentence_bounds(text)] or [0])
    return np.searchsorted(starts, np.array([o[0] for o in offsets]), side="right")


def _clause_breaks(text: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per token, how many tokens up to it hold a clause or sentence break."""
    flags = [any(c in CLAUSE_BREAKS for c in text[a:b]) for a, b in offsets]
    return np.cumsum(np.array(flags, dtype=np.int64))


def decode(
    windows: Sequence[WindowLogits],
    passages: Sequence[str],
    max_tokens: int,
    length_bonus: float = 0.0,
    within_sentence: bool = False,
    clause_penalty: float = 0.0,
) -> Reading:
    """Each passage's best span and null score from its windows' logits."""
    spans: list[ReadSpan | None] = [None] * len(passages)
    nulls = [np.inf] * len(passages)
    for w in windows:
        nulls[w.passage] = min(nulls[w.passage], float(w.start[0] + w.end[0]))
        text = passages[w.passage]
        sentence = _sentence_ids(text, w.offsets) if within_sentence else None
        breaks = _clause_breaks(text, w.offsets) if clause_penalty else None
        found = _best_in_window(
            w.start, w.end, w.context, max_tokens, length_bonus, sentence, breaks, clause_penalty
        )
        held = spans[w.passage]
        if found is None or (held is not None and found[2] <= held.score):
            continue
        ts, te, score = found
        # token edges drag in spaces and clause punctuation
        cs, ce = trim(passages[w.passage], w.offsets[ts][0], w.offsets[te][1])
        if ce > cs:
            spans[w.passage] = ReadSpan(w.passage, cs, ce, score)
    return Reading(tuple(spans), tuple(float(n) for n in nulls))


def token_span(
    offsets: Sequence[tuple[int, int]], context: Sequence[int], start: int, end: int
) -> tuple[int, int] | None:
    """(first, last) token of the ``context`` tokens (their indices, in order) covering
    the characters ``[start, end)``, if the context holds them whole: the training labels'
    mapping, and the one a proposed span is scored by."""
    if len(context) == 0 or offsets[context[0]][0] > start or offsets[context[-1]][1] < end:
        return None
    ts = next(i for i in context if offsets[i][1] > start)
    te = next(i for i in reversed(context) if offsets[i][0] < end)
    return (int(ts), int(te)) if ts <= te else None


def score_span(windows: Sequence[WindowLogits], passage: int, start: int, end: int) -> float | None:
    """The model's score (start + end logit) for the characters ``[start, end)`` of
    ``passage``: the best over the windows that hold them whole, None if none does."""
    scores = []
    for w in windows:
        span = token_span(w.offsets, np.flatnonzero(w.context), start, end) if w.passage == passage else None
        if span is not None:
            scores.append(float(w.start[span[0]] + w.end[span[1]]))
    return max(scores, default=None)


def with_proposal(
    reading: Reading,
    windows: Sequence[WindowLogits],
    proposal: tuple[int, int, int],
    bonus: float,
) -> Reading:
    """``reading`` with another answerer's span (passage, start, end) put to the model:
    it replaces its passage's best span when the model's score for it plus ``bonus``
    beats that span. The bonus is how much a second opinion is worth, in logits."""
    passage, start, end = proposal
    if not 0 <= passage < len(reading.spans):
        return reading
    score = score_span(windows, passage, start, end)
    held = reading.spans[passage]
    if score is None or (held is not None and score + bonus <= held.score):
        return reading
    spans = list(reading.spans)
    spans[passage] = ReadSpan(passage, start, end, score + bonus)
    return Reading(tuple(spans), reading.nulls)


def _onnx_backend(model_dir: Path, threads: int | None) -> Logits:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(model_dir / ONNX_INT8), opts, providers=["CPUExecutionProvider"])

    def run(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, e = sess.run(["start_logits", "end_logits"], {"input_ids": ids, "attention_mask": mask})
        return s, e

    return run


def _torch_backend(model_dir: Path, int8: bool) -> Logits:
    import torch
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    if int8:
        with warnings.catch_warnings():
            # torch deprecates eager quantization in favour of torchao (not a dependency);
            # it is still what this backend measures against ONNX Runtime (bench/)
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def run(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()

    return run


class Reader:
    """Reads passages for one question at a time; thread-safe (one forward at a time)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        backend: str = "onnx-int8",
        max_length: int = 256,
        stride: int = 96,
        max_answer_tokens: int = 40,
        # 4 windows of 256 tokens per forward: as fast on 2 cores as 16 (3.4 vs 4.0 s per
        # 32 windows, ONNX Runtime int8) while its activations peak at 30 MB instead of 370
        batch_size: int = 4,
        threads: int | None = None,
    ) -> None:
        from .vocab import load_tokenizer

        if backend not in BACKENDS:
            raise ValueError(f"unknown reader backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model_dir = Path(model_dir)
        self.backend = backend
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        # the tokenizer never truncates the question (only the passage), so a pasted
        # essay would overflow the window: a real question fits in far less
        self.max_question_chars = max_length // 3
        # the pruned tokenizer (vocab.py) numbers its pieces apart: ``_ids`` maps them back
        self._tok, self._ids = load_tokenizer(self.model_dir)
        self._tok.enable_truncation(max_length, stride=stride, strategy="only_second")
        self._tok.no_padding()
        self._pad = self._model_ids([self._tok.token_to_id("<pad>") or 1])[0]
        if backend == "onnx-int8":
            self._logits = _onnx_backend(self.model_dir, threads)
        else:
            self._logits = _torch_backend(self.model_dir, int8=backend == "torch-int8")
        self._lock = threading.Lock()

    def _model_ids(self, ids: list[int]) -> list[int]:
        return ids if self._ids is None else self._ids[ids].tolist()

    def windows(self, question: str, passages: Sequence[str]) -> list[_Window]:
        """``<s> question </s></s> passage </s>`` windows, the model's token ids."""
        out = []
        for p, enc in enumerate(self._tok.encode_batch([(question, t) for t in passages])):
            for e in (enc, *enc.overflowing):
                ctx = np.array([s == 1 for s in e.sequence_ids], dtype=bool)
                out.append(_Window(p, self._model_ids(e.ids), e.offsets, ctx))
        return out

    def logits(self, windows: Sequence[_Window]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits per window (unpadded), in batches of similar length."""
        starts: list[np.ndarray] = [np.empty(0)] * len(windows)
        ends: list[np.ndarray] = [np.empty(0)] * len(windows)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))
        with self._lock:
            for b in range(0, len(order), self.batch_size):
                batch = order[b : b + self.batch_size]
                width = max(len(windows[i].ids) for i in batch)
                ids = np.full((len(batch), width), self._pad, dtype=np.int64)
                mask = np.zeros((len(batch), width), dtype=np.int64)
                for row, i in enumerate(batch):
                    n = len(windows[i].ids)
                    ids[row, :n] = windows[i].ids
                    mask[row, :n] = 1
                s, e = self._logits(ids, mask)
                for row, i in enumerate(batch):
                    n = len(windows[i].ids)
                    starts[i], ends[i] = s[row, :n], e[row, :n]
        return starts, ends

    def window_logits(self, question: str, passages: Sequence[str]) -> list[WindowLogits]:
        """The model's output on every window of ``passages`` (the question cut to fit)."""
        question = question.strip()[: self.max_question_chars]
        if not passages or not question:
            return []
        windows = self.windows(question, passages)
        starts, ends = self.logits(windows)
        return [
            WindowLogits(w.passage, w.offsets, w.context, s, e)
            for w, s, e in zip(windows, starts, ends, strict=True)
        ]

    def read(
        self,
        question: str,
        passages: Sequence[str],
        *,
        length_bonus: float = 0.0,
        within_sentence: bool = False,
        clause_penalty: float = 0.0,
    ) -> Reading:
        passages = list(passages)
        windows = self.window_logits(question, passages)
        if not windows:
            return Reading((None,) * len(passages), (0.0,) * len(passages))
        return decode(
            windows, passages, self.max_answer_tokens, length_bonus, within_sentence, clause_penalty
        )
