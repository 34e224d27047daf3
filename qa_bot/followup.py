"""Conversation memory for follow-up questions.

"算力小镇投资多少" → "那它占地多大？" must be asked of the index as "算力小镇占地多大？": the
follow-up alone retrieves nothing useful. ``ConversationMemory`` remembers, per chat, the
topic (main noun phrase) of recent questions and rewrites follow-ups with it. It is
bounded (LRU over conversations, a few turns each) and forgets after ``ttl_seconds``,
because a question asked an hour later is a new conversation.

Nouns are found by jieba's part-of-speech tagging with the ``tokenizer`` passed in: the
service passes its index's, so a question is cut with the user words it was searched
with; None takes ``qa_bot.lexical.default_tokenizer``.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from .lexical import PosTagger, default_tokenizer

__all__ = ["ConversationMemory", "is_followup", "main_topic"]


# verbal nouns ("投资") are left out: they are the predicate, not the topic
_NOUN_FLAGS = ("n", "nr", "ns", "nt", "nz", "nrt", "nrfg", "ng", "j", "eng")
# Nouns that carry no topic of their own ("什么时候", "叫什么名字", "什么原因").
_GENERIC_NOUNS = frozenset(
    "时候 时间 名字 名称 原因 情况 东西 问题 事情 事 地方 方面 结果 意思 数字 价格 金额 比例 规模 日期 人 谁"
    " 多少 哪里 哪儿 啥 什么 哪些 东东 消息 新闻 文章".split()
)
# Deixis/pronouns that, at the start of a question, point back to the previous topic.
_LEADING_FILLER = re.compile(r"^(?:那么|那|然后|所以|另外|再问一下|再问|请问|还想问)[，,\s]*")
_PRONOUN = re.compile(
    r"^(?:它们|他们|她们|它|他|她|其|该|这个|那个|这家|那家|这款|那款|这只|那只|这位|那位|此|这|那)"
)
# Classifier nouns after a demonstrative ("该公司", "这家机构") that the topic replaces.
_CLASSIFIER_NOUNS = re.compile(
    r"^(?:公司|机构|企业|集团|银行|券商|基金|产品|项目|平台|地方|个|家|款|只|位|人|小镇|政策|文件|方案|意见|会议|事)"
)
_TRAILING = re.compile(r"[呢吗呀啊吧嘛]?[？?！!。.\s]*$")


def _noun_phrases(question: str, tokenizer: PosTagger | None) -> list[tuple[int, str]]:
    """Maximal runs of adjacent noun tokens, with their start offsets."""
    out: list[tuple[int, str]] = []
    pos, run_start, run = 0, 0, ""
    for word, flag in (tokenizer if tokenizer is not None else default_tokenizer()).tag(question):
        is_noun = flag.startswith(_NOUN_FLAGS) and word not in _GENERIC_NOUNS and len(word) >= 1
        if is_noun and re.fullmatch(r"[\w·\-]+", word):
            if not run:
                run_start = pos
            run += word
        else:
            if run:
                out.append((run_start, run))
            run = ""
        pos += len(word)
    if run:
        out.append((run_start, run))
    return [(s, p) for s, p in out if len(p) >= 2]


def main_topic(
    question: str,
    answer_title: str | None = None,
    topic_terms: Sequence[str] = (),
    tokenizer: PosTagger | None = None,
) -> str | None:
    """The main noun phrase of ``question``: sentence-initial, long, and confirmed by the
    answer's title or the retrieval's key terms when possible."""
    phrases = _noun_phrases(question, tokenizer)
    if not phrases:
        terms = [t for t in topic_terms if len(t) >= 2]
        return max(terms, key=len) if terms else None
    title = answer_title or ""
    best, best_score = None, float("-inf")
    for rank, (_, p) in enumerate(phrases):
        score = min(len(p), 4) + (3.0 if rank == 0 else 0.0)
        if p in title:
            score += 4.0
        if any(t and (t in p or p in t) for t in topic_terms):
            score += 2.0
        if score > best_score:
            best, best_score = p, score
    return best


def is_followup(question: str, tokenizer: PosTagger | None = None) -> bool:
    """A question that points back (leading pronoun) or has no content noun of its own."""
    q = _LEADING_FILLER.sub("", question.strip())
    if not q:
        return False
    if q.startswith("还有"):
        return True
    if _PRONOUN.match(q):
        return True
    return not _noun_phrases(q, tokenizer)


@dataclass(frozen=True)
class _Turn:
    question: str
    topic: str | None
    at: float


class ConversationMemory:
    """Recent topics per conversation key, bounded and expiring. Thread-safe."""

    def __init__(
        self,
        max_turns: int = 5,
        ttl_seconds: float = 900,
        max_conversations: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_turns < 1 or max_conversations < 1:
            raise ValueError("max_turns and max_conversations must be >= 1")
        self.max_turns = max_turns
        self.ttl_seconds = ttl_seconds
        self.max_conversations = max_conversations
        self._clock = clock
        self._lock = threading.Lock()
        self._convs: OrderedDict[Hashable, deque[_Turn]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            self._expire_all()
            return len(self._convs)

    def _live_turns(self, key: Hashable) -> deque[_Turn] | None:
        turns = self._convs.get(key)
        if turns is None:
            return None
        cutoff = self._clock() - self.ttl_seconds
        while turns and turns[0].at < cutoff:
            turns.popleft()
        if not turns:
            del self._convs[key]
            return None
        self._convs.move_to_end(key)
        return turns

    def _expire_all(self) -> None:
        for key in list(self._convs):
            self._live_turns(key)

    def topic(self, key: Hashable) -> str | None:
        """The most recent remembered topic of this conversation, if still fresh."""
        with self._lock:
            turns = self._live_turns(key)
            if not turns:
                return None
            for turn in reversed(turns):
                if turn.topic:
                    return turn.topic
            return None

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._convs.pop(key, None)

    def remember(
        self,
        key: Hashable,
        question: str,
        answer_title: str | None,
        topic_terms: Sequence[str],
        tokenizer: PosTagger | None = None,
    ) -> None:
        """Record a turn. Pass the *resolved* question so that a chain of follow-ups keeps
        the original topic ("它占地多大" → "算力小镇占地多大" → topic 算力小镇)."""
        topic = main_topic(question, answer_title, topic_terms, tokenizer)
        with self._lock:
            turns = self._live_turns(key)
            if turns is None:
                turns = deque(maxlen=self.max_turns)
                self._convs[key] = turns
            turns.append(_Turn(question, topic, self._clock()))
            self._convs.move_to_end(key)
            while len(self._convs) > self.max_conversations:
                self._convs.popitem(last=False)

    def resolve(self, key: Hashable, question: str, tokenizer: PosTagger | None = None) -> str:
        """``question`` rewritten with the previous topic if it is a follow-up, else as is."""
        topic = self.topic(key)
        if not topic or not question.strip() or topic in question:
            return question
        if not is_followup(question, tokenizer):
            return self._swap_topic(key, question, topic, tokenizer)
        return rewrite(question, topic)

    def _swap_topic(
        self, key: Hashable, question: str, topic: str, tokenizer: PosTagger | None
    ) -> str:
        """Ellipsis with a new topic: "那北京呢" after "算力小镇投资多少" → "北京投资多少"."""
        q = _LEADING_FILLER.sub("", question.strip())
        m = re.fullmatch(r"(.{1,20}?)(?:呢|怎么样|如何)[？?。！!\s]*", q)
        if not m:
            return question
        new = m.group(1).strip("，, ")
        phrases = _noun_phrases(new, tokenizer)
        if not phrases or phrases[0][1] != new:
            return question
        with self._lock:
            turns = self._live_turns(key)
            prev = next((t for t in reversed(turns or ()) if t.topic == topic), None)
        if prev is None or topic not in prev.question:
            return question
        return prev.question.replace(topic, new, 1)


def rewrite(question: str, topic: str) -> str:
    """Put ``topic`` in place of the leading pronoun, or in front when there is none."""
    q = _LEADING_FILLER.sub("", question.strip())
    if q.startswith("还有"):
        # "还有呢" / "还有什么风险": same topic, the rest is the new question
        rest = _TRAILING.sub("", q[2:]).strip()
        return f"{topic} {rest}".strip() if rest else topic
    m = _PRONOUN.match(q)
    if m:
        rest = q[m.end() :]
        # "该公司营收多少": the classifier noun is subsumed by the topic
        c = _CLASSIFIER_NOUNS.match(rest)
        if c and m.group() not in {"它", "他", "她", "它们", "他们", "她们", "其"}:
            rest = rest[c.end() :]
        rest = re.sub(r"^[呢，,\s]+", "", rest)
        if not _TRAILING.sub("", rest):
            return topic  # "那它呢": just the topic again
        return topic + rest
    rest = _TRAILING.sub("", q).strip()
    return f"{topic} {rest}" if rest else topic
