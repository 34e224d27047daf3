"""Tests for qa_bot.followup: follow-up rewriting and bounded, expiring memory."""

from __future__ import annotations

from qa_bot.followup import ConversationMemory, is_followup, main_topic

TITLE = "【财经分析】杭州打造算力小镇 多地抢跑算力产业“新赛道”"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _mem(**kw) -> ConversationMemory:
    m = ConversationMemory(**kw)
    m.remember("chat1", "算力小镇投资多少", TITLE, ["算力", "小镇", "投资"])
    return m


def test_topic_is_main_noun_phrase() -> None:
    assert main_topic("算力小镇投资多少", TITLE, ["算力", "小镇", "投资"]) == "算力小镇"
    assert main_topic("华西证券估计明年股市净流入资金大概多少") == "华西证券"
    assert main_topic("雪球产品的正式名字叫什么") == "雪球产品"


def test_pronoun_replaced_by_topic() -> None:
    m = _mem()
    assert m.resolve("chat1", "那它占地多大？") == "算力小镇占地多大？"
    assert m.resolve("chat1", "它什么时候开园") == "算力小镇什么时候开园"
    assert m.resolve("chat1", "该小镇签约了哪些项目") == "算力小镇签约了哪些项目"
    assert m.resolve("chat1", "其投资额多少") == "算力小镇投资额多少"


def test_followup_without_pronoun_gets_topic_prepended() -> None:
    m = _mem()
    assert m.resolve("chat1", "占地多大呢") == "算力小镇 占地多大"
    assert m.resolve("chat1", "还有呢") == "算力小镇"


def test_new_topic_with_ellipsis() -> None:
    m = _mem()
    assert m.resolve("chat1", "那北京呢") == "北京投资多少"


def test_non_followup_unchanged() -> None:
    m = _mem()
    for q in [
        "雪球产品的正式名字叫什么",
        "印度央行这次动利率了吗",
        "华西证券估计明年股市净流入资金大概多少",
    ]:
        assert not is_followup(q)
        assert m.resolve("chat1", q) == q
    # a question already naming the topic is left alone
    assert m.resolve("chat1", "算力小镇占地多大") == "算力小镇占地多大"


def test_keys_are_separate() -> None:
    m = _mem()
    assert m.resolve("chat2", "那它占地多大？") == "那它占地多大？"


def test_ttl_expiry() -> None:
    clock = FakeClock()
    m = _mem(ttl_seconds=60, clock=clock)
    clock.now += 59
    assert m.resolve("chat1", "它占地多大") == "算力小镇占地多大"
    clock.now += 2
    assert m.resolve("chat1", "它占地多大") == "它占地多大"
    assert m.topic("chat1") is None
    assert len(m) == 0


def test_latest_topic_wins_and_turns_bounded() -> None:
    clock = FakeClock()
    m = ConversationMemory(max_turns=2, clock=clock)
    m.remember("c", "算力小镇投资多少", TITLE, [])
    m.remember("c", "雪球产品的正式名字叫什么", None, [])
    assert m.topic("c") == "雪球产品"
    m.remember("c", "印度央行这次动利率了吗", None, [])
    assert len(m._convs["c"]) == 2
    assert m.topic("c") == "印度央行"


def test_bounded_conversations_lru() -> None:
    m = ConversationMemory(max_conversations=3)
    for k in ("a", "b", "c"):
        m.remember(k, "算力小镇投资多少", TITLE, [])
    m.topic("a")  # touch: "b" is now the least recently used
    m.remember("d", "雪球产品的正式名字叫什么", None, [])
    assert len(m) == 3
    assert m.topic("b") is None
    assert m.topic("a") == "算力小镇"
    assert m.topic("d") == "雪球产品"


def test_chained_followups_keep_topic() -> None:
    m = _mem()
    q2 = m.resolve("chat1", "那它占地多大？")
    m.remember("chat1", q2, TITLE, [])
    assert m.resolve("chat1", "它什么时候开园") == "算力小镇什么时候开园"


class _Tagger:
    """Tags the words it is told as proper nouns and every other character as a particle."""

    def __init__(self, nouns: list[str]) -> None:
        self.nouns = nouns

    def tag(self, text: str) -> list[tuple[str, str]]:
        out, i = [], 0
        while i < len(text):
            word = next((w for w in self.nouns if text.startswith(w, i)), text[i])
            out.append((word, "nz" if word in self.nouns else "y"))
            i += len(word)
        return out


def test_memory_tags_with_the_tokenizer_passed_in() -> None:
    # jieba alone finds no noun in "快跑吧" (adjective, verb, particle)
    assert main_topic("快跑吧投资多少") is None
    tk = _Tagger(["快跑吧"])
    assert main_topic("快跑吧投资多少", tokenizer=tk) == "快跑吧"
    assert not is_followup("快跑吧投资多少", tokenizer=tk)
    m = ConversationMemory()
    m.remember("c", "快跑吧投资多少", None, [], tokenizer=tk)
    assert m.topic("c") == "快跑吧"
    assert m.resolve("c", "它占地多大", tokenizer=tk) == "快跑吧占地多大"
