"""The question's words: its content terms with weights, its focus, the words that name the
event a figure or date question asks about, and how well a text repeats each of them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ...lexical import WordCutter
from ..qtype import DESC_NOUN, DESC_Q
from ..spans import MAG, UNIT, cut_words, date_spans, number_spans

__all__ = [
    "TAIL_PARTICLES",
    "Term",
    "WH_RE",
    "content_terms",
    "desc_focus",
    "predicate_terms",
    "says",
    "term_match",
    "term_positions",
    "terms_of",
]

_QWORD_RE = re.compile(
    r"多少钱|多少|几[个家只位次倍成岁年天名人条项款台辆套吨号月日]?|多大|多高|多长|多久|多远|多重|多快|什么时候|什么时间"
    r"|啥时候|啥时|何时|哪一?[天年月日家个款只位些种部所类条]|哪几|哪里|哪儿|在哪|哪|谁|什么|啥|咋|怎么样|怎么|怎样|如何"
    r"|为什么|为何|为啥|怎么会|是否|有没有|是不是|吗|呢|吧|呀|啊|嘛"
)
# Wh-phrases: where the answer stands in the question ("生命数耗完即算为什么" ↔ "…即算为踢爆").
WH_RE = re.compile(
    r"什么时候|什么时间|什么地方|(?<![称之作成视认改名译即算封定列选命])为什么|什么样的?|什么|啥时候|啥地方|啥"
    r"|为何|为啥|如何|怎么样|怎样|怎么"
    r"|何时|何处|何地|何人|何种|何谓|多少钱|多少|多大|多高|多长|多久|多远|多重|多快|谁|在哪里|在哪儿|在哪"
    r"|哪里|哪儿|哪一?[天年月日家个款只位些种部所类条座国省市]|哪几[个家种类项只位条样座]?|哪"
    r"|几[个家只位次倍成岁年天名人条项款台辆套吨号月日座种]?"
)
TAIL_PARTICLES = re.compile(r"(?:的|了|呢|吗|吧|啊|呀|嘛|来着|[\s？?。！!，,])*$")
STOP = frozenset(
    """
    的 了 是 在 有 和 与 及 或 也 都 还 就 又 被 把 将 对 给 跟 向 从 让 用 上 下 中 里 个 这 那 其 它 他 她 们
    之 以 于 为 而 但 并 且 则 等 着 过 得 地 到 要 会 能 可 可以 可能 应该 已经 已 现在 目前 当时 后来 后面 最初
    这种 那种 这个 那个 这家 那家 这份 那份 这类 那类 这位 那位 这次 那次 这回 那回 这些 那些 这边 那边 这里 那里
    咱们 我们 你们 大家 自己 人家 大概 大约 一般 到底 究竟 具体 主要 一共 总共 左右 之类 什么样 一下 一个 一些
    觉得 认为 知道 请问 问下 问一下 想 说 看 听说 据说 所谓 真的 真 呀 啊 吗 呢 吧 嘛 哦 嗯 了吗 没 不 么 那么 这么
    今天 现在 这时 当前 最近 近期 之前 之后 以后 以前 开始 后 前
    """.split()
)
_PUNCT_RE = re.compile(r"[\s，。？！、；：,.?!;:“”‘’\"'（）()《》<>【】\[\]…—\-·]+")
_PRED_STOP_RE = re.compile(r"[，,。？?！!、；;：:\s]")
_DESC_NOUN_RE = re.compile(DESC_NOUN)
_WORD_RE = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]+")


@dataclass(frozen=True)
class Term:
    text: str
    weight: float
    # grammatical concepts ("first", "most") are matched by pattern, not by the literal word
    pattern: re.Pattern[str] | None = None


# Paraphrase classes for function-level meanings that questions and news word differently
# ("头一个" vs "首家", "最重" vs "最多"); deliberately topic-free.
_CONCEPTS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = (
    (
        "<first>",
        re.compile(r"头一|第一|首[个家款次批位只]|率先|最早|最先|首次"),
        re.compile(r"首[个家款次批位只度]|第一|率先|最早|首次|首发"),
    ),
    ("<most>", re.compile(r"最(?!早|先|初|终|后|近)"), re.compile(r"最(?!早|先|初|终|后|近)")),
)


def content_terms(question: str, tokenizer: WordCutter | None = None) -> list[str]:
    """The question's content words (jieba tokens minus stopwords and question words)."""
    return [t.text for t in terms_of(question, tokenizer) if t.pattern is None]


# The caches below are keyed by the tokenizer too: another one may cut the question otherwise.
@lru_cache(maxsize=2048)
def terms_of(question: str, tokenizer: WordCutter | None = None) -> tuple[Term, ...]:
    """The question's terms with weights: its figures and dates, its content words (the
    focus raised), and the grammatical concepts it uses."""
    out = _word_weights(question, tokenizer)
    _boost_focus(question, out)
    focus = desc_focus(question, tokenizer)
    if focus:
        # "夜来香的种子有什么特点": "特点" is what is asked, not a word the answer repeats;
        # the noun it is about ("种子") is what the answering sentence talks about
        noun, head = focus
        if noun in out:
            out[noun] *= 0.3
        if head in out:
            out[head] = max(out[head] * 1.5, 1.0)
    terms = [Term(t, w) for t, w in out.items()]
    for name, q_rx, p_rx in _CONCEPTS:
        if q_rx.search(question):
            terms.append(Term(name, 0.8, p_rx))
    return tuple(terms)


def _word_weights(question: str, tokenizer: WordCutter | None) -> dict[str, float]:
    # "保不保本" → "保本", "动没动" → "动": the A-not-A form hides the content word
    q = re.sub(r"(.)[不没]\1", r"\1", question)
    out: dict[str, float] = {}
    # dates and figures in a question are strong anchors; keep them whole (jieba splits them)
    anchors = [sp for sp in date_spans(q) + number_spans(q) if sp.strength >= 0.7]
    for sp in anchors:
        out[q[sp.start : sp.end]] = 2.0
    for sp in sorted(anchors, key=lambda x: -x.start):
        q = q[: sp.start] + " " + q[sp.end :]
    q = _QWORD_RE.sub(" ", q)
    for chunk in _PUNCT_RE.split(q):
        if not chunk:
            continue
        for tok in cut_words(chunk, tokenizer):
            tok = tok.strip()
            if not tok or tok in STOP or re.fullmatch(r"\W+", tok):
                continue
            if len(tok) == 1 and not re.fullmatch(r"[\u4e00-\u9fffA-Za-z0-9]", tok):
                continue
            w = 0.4 if len(tok) == 1 else min(len(tok), 4) / 2
            out[tok] = max(out.get(tok, 0.0), w)
    return out


@lru_cache(maxsize=2048)
def desc_focus(question: str, tokenizer: WordCutter | None = None) -> tuple[str, str] | None:
    """For a description question, ``(description noun, the word before it)``:
    "夜来香的种子有什么特点" → ("特点", "种子")."""
    if not DESC_Q.search(question):
        return None
    m = _DESC_NOUN_RE.search(question)
    if not m:
        return None
    before = WH_RE.sub("", question[: m.start()])
    before = re.sub(r"(?:的|之|是|有|为|主要|样)+$", "", before)
    head = re.split(r"[的之，,、\s]", before)[-1]
    if 1 <= len(head) <= 4 and not re.search(r"[是有在了]", head):
        return m.group(), head
    toks = [t for t in cut_words(before, tokenizer) if _WORD_RE.fullmatch(t) and t not in STOP]
    return (m.group(), toks[-1]) if toks else (m.group(), "")


def _boost_focus(question: str, weights: dict[str, float]) -> None:
    """Raise the weight of the question's focus: the content word right next to the
    question word ("投资多少", "哪家券商") and the last content word, which in Chinese
    wh-in-situ questions is usually the predicate ("…什么时候在中国开始生效")."""
    if not weights:
        return
    pos = {t: question.find(t) for t in weights if question.find(t) >= 0}
    if not pos:
        return
    focus = {max(pos, key=lambda t: pos[t] + len(t))}
    for m in _QWORD_RE.finditer(question):
        before = [t for t in pos if pos[t] + len(t) <= m.start()]
        after = [t for t in pos if pos[t] >= m.end()]
        if before:
            t = max(before, key=lambda t: pos[t] + len(t))
            if m.start() - (pos[t] + len(t)) <= 2:
                focus.add(t)
        if after:
            t = min(after, key=lambda t: pos[t])
            if pos[t] - m.end() <= 2:
                focus.add(t)
    for t in focus:
        if len(t) >= 2:
            weights[t] *= 1.5


@lru_cache(maxsize=2048)
def predicate_terms(question: str, tokenizer: WordCutter | None = None) -> tuple[str, ...]:
    """The words that say what happened, for a figure or date question: those right after
    the wh-phrase ("什么时候|恢复发行的", "多少|会触发敲入"). An answer about the same
    subject but another event ("雪球产品突然爆红" for "雪球产品什么时候恢复发行") contains
    none of them."""
    m = WH_RE.search(question)
    if not m:
        return ()
    after = TAIL_PARTICLES.sub("", _PRED_STOP_RE.split(question[m.end() :], maxsplit=1)[0])
    # "多少厘米": a unit after the wh-phrase says nothing of the event; and the words before
    # it are too often paraphrased ("保持多少年" for "已连续12年") to be required
    if not after or re.fullmatch(rf"(?:{UNIT}|{MAG}|[\u4e00-\u9fff])(?:{UNIT})?", after):
        return ()
    return tuple(t for t in cut_words(after, tokenizer) if t not in STOP and _WORD_RE.fullmatch(t))


def says(word: str, text: str) -> bool:
    """``text`` mentions ``word``, allowing reordered two-character words (能产/产能) and
    partial matches of longer ones."""
    if word in text:
        return True
    if len(word) == 2:
        return all(c in text for c in word) and ("\u4e00" <= word[0] <= "\u9fff")
    return len(word) > 2 and any(word[i : i + 2] in text for i in range(len(word) - 1))


def _bigrams(s: str) -> set[str]:
    return {s[i : i + 2] for i in range(len(s) - 1)}


def term_match(term: Term, text: str) -> float:
    """How much of ``term`` (0..1) appears in ``text``; paraphrase-tolerant via bigrams."""
    if term.pattern is not None:
        return 1.0 if term.pattern.search(text) else 0.0
    if term.text in text:
        return 1.0
    t = term.text
    if len(t) >= 3:
        bg = _bigrams(t)
        hit = sum(1 for b in bg if b in text)
        return 0.7 * hit / len(bg)
    if len(t) == 2 and "\u4e00" <= t[0] <= "\u9fff" and "\u4e00" <= t[1] <= "\u9fff":
        hit = sum(1 for c in t if c in text)
        return 0.2 * hit / 2
    return 0.0


def term_positions(term: str, text: str) -> list[int]:
    """Every offset of ``term`` in ``text``, overlapping ones included."""
    out, i = [], text.find(term)
    while i >= 0:
        out.append(i)
        i = text.find(term, i + 1)
    return out
