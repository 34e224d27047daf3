"""Short extractive answers: pick the clause of a retrieved passage that answers a question.

Pipeline: classify the question (what kind of span is wanted) → extract the question's
content terms → split the top passages into sentences and clauses → score windows of
adjacent clauses by term coverage, presence of a typed span and its proximity to the
matched terms → return the best window verbatim, with the typed span as highlight.

Everything is regex/heuristic based and general: no lists tuned to particular questions.
Numbers, dates and names are always taken verbatim from the source and never cut.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from qa_bot.types import ScoredChunk

__all__ = [
    "Extraction",
    "QType",
    "Span",
    "classify_question",
    "content_terms",
    "extract_answer",
    "find_spans",
]


class QType(str, Enum):
    NUMBER = "number"
    DATE = "date"
    ENTITY = "entity"
    LIST = "list"
    REASON = "reason"
    YESNO = "yesno"
    OTHER = "other"


@dataclass(frozen=True)
class Span:
    """A typed span inside some text: ``text[start:end]``.

    ``strength`` in (0, 1]: how sure the detector is that this is a real answer-like span
    (a bare number without unit is weaker than ``30.67亿元``).
    """

    start: int
    end: int
    kind: QType
    strength: float = 1.0
    sub: str = ""  # finer kind: "person", "org", "product", "name", "quote", ...


@dataclass(frozen=True)
class Extraction:
    text: str
    highlight: tuple[int, int] | None
    passage_index: int
    qtype: QType
    confidence: float


# --------------------------------------------------------------------------- jieba

_JIEBA_LOCK = threading.Lock()
_JIEBA = None


def _jieba():
    """Import and initialise jieba once per process, without its startup chatter."""
    global _JIEBA
    if _JIEBA is None:
        with _JIEBA_LOCK:
            if _JIEBA is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _JIEBA = jieba
    return _JIEBA


@lru_cache(maxsize=4096)
def _cut(text: str) -> tuple[str, ...]:
    return tuple(_jieba().lcut(text))


# --------------------------------------------------------------------------- question typing

# Order matters: DATE before NUMBER (几月/几号 are dates), LIST before ENTITY (哪几个部门 is a
# list), REASON before YESNO (为什么…吗 asks for a reason).
_DATE_Q = re.compile(
    r"什么时候|什么时间|啥时候|啥时|何时|哪天|哪一天|哪日|哪年|哪一年|哪个月|几月|几号|几日|日期|时间点"
    r"|哪个季度|几时|多会儿|什么日子|哪月"
)
_LIST_Q = re.compile(
    r"哪些|有哪几|哪几[个家种类项只位条样]|包括什么|包括啥|都有什么|都有啥|有什么.{0,4}[和及]|列举"
)
_REASON_Q = re.compile(
    r"为什么|为何|为啥|原因|怎么会|咋会|凭什么|何故|缘何|什么导致|啥导致|因为什么|因为啥|干嘛要|为了什么"
)
_NUMBER_Q = re.compile(
    r"多少|几[个家只位次倍成岁年天名人条项款台辆套吨亿万千百十]|多大|多高|多长|多久|多远|多重|多快|多贵|多少钱"
    r"|比例|占比|比重|增速|增幅|涨幅|跌幅|降幅|规模|价格|价位|金额|数额|数量|收益率|利率是|税率|费率"
    r"|几成|多少个|有多|几何"
)
_ENTITY_Q = re.compile(
    r"谁|哪位|哪家|哪个|哪款|哪只|哪一[家个款只位]|哪里|哪儿|在哪|什么公司|什么机构|什么人|什么产品"
    r"|叫什么|叫啥|名字|名称|全称|简称|哪部|哪所|哪国|哪座|哪条|哪支|哪种|何人|何处|啥公司|啥名"
)
_YESNO_Q = re.compile(
    r"(?:吗|嘛|(?<![什怎那这多要])么)[？?!！。\s]*$|是否|有没有|是不是|能不能|会不会|可不可以|要不要|算不算|还有没|可否|能否"
    r"|(.)不\1|(.)没\2"
)

_ENTITY_PERSON_Q = re.compile(
    r"谁|哪位|何人|分析师|经济学家|投资人|董事长|创始人|专家|人物|老板|负责人|行长|主席|总裁|CEO"
)
_ENTITY_ORG_Q = re.compile(
    r"哪家|公司|机构|券商|银行|基金|部门|单位|企业|平台|网站|媒体|交易所|在哪|哪里|哪儿"
)
_ENTITY_PRODUCT_Q = re.compile(r"哪款|哪只|产品|车型|型号|股票|个股|哪部|品牌|药")
_ENTITY_NAME_Q = re.compile(r"叫什么|叫啥|名字|名称|全称|简称|啥名|改名|更名")


def classify_question(q: str) -> QType:
    q = q.strip()
    if _DATE_Q.search(q):
        return QType.DATE
    if _REASON_Q.search(q):
        return QType.REASON
    if _LIST_Q.search(q):
        return QType.LIST
    if _NUMBER_Q.search(q):
        return QType.NUMBER
    if _ENTITY_Q.search(q):
        return QType.ENTITY
    if _YESNO_Q.search(q):
        return QType.YESNO
    # "发布了什么方案", "用的啥技术": a named thing is wanted; bare "X是什么" is a definition
    if re.search(r"(?:什么|啥|哪)[\u4e00-\u9fff]", q) or re.search(r"[^是](?:什么|啥)[？?]?$", q):
        return QType.ENTITY
    return QType.OTHER


def _entity_subkind(q: str) -> str:
    for sub, rx in (
        ("name", _ENTITY_NAME_Q),
        ("person", _ENTITY_PERSON_Q),
        ("product", _ENTITY_PRODUCT_Q),
        ("org", _ENTITY_ORG_Q),
    ):
        if rx.search(q):
            return sub
    return ""


# The measure word right after 多少/几 ("多少辆", "多少年", "几个基点") names the unit wanted.
_UNIT_HINT_Q = re.compile(r"(?:多少|几)(个基点|个百分点|基点|百分点|[^\s的了呢吗？?，,。个]{1})")


def _unit_hint(q: str) -> str | None:
    m = _UNIT_HINT_Q.search(q)
    if not m:
        return None
    u = m.group(1)
    if u in {"钱", "块"}:
        return "元"
    if re.fullmatch(r"[\u4e00-\u9fff%]+", u) is None:
        return None
    return u


# --------------------------------------------------------------------------- span detectors

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_MAG = r"(?:万亿|千亿|百亿|十亿|亿|千万|百万|十万|万|千|百)"
_UNIT = (
    r"(?:个百分点|百分点|个基点|基点|%|％|‰|(?:美|港|欧|日|韩|加|澳)?元(?:人民币)?|美金|人民币|英镑|卢布|法郎"
    r"|吨|千克|公斤|克|毫克|斤|升|毫升|桶|盎司|辆|台|部|架|艘|套|座|栋|间|张|件|项|条|次|人次|人口|人"
    r"|户|名|位|家|只|个|款|种|所|场|批|股|手|份|倍|成|亩|公顷|平方米|平方公里|平米|公里|千米|米"
    r"|千瓦时|千瓦|兆瓦|吉瓦|瓦|度|GW|MW|kW|GWh|TB|PB|岁|年|个月|周|天|小时|分钟|秒|笔|单|元/股)"
)
_PER = r"(?:/(?:年|月|日|天|吨|桶|股|人|平方米|斤|公斤|千克|盎司|辆|台|小时))?"
_PREFIX = r"(?:大约|约合|约为|约|超过|超|近|逾|达到|高达|多达|达|不到|不足|仅|至少|最多|连续|累计|共计|合计|共)"
_RANGE_SEP = r"\s?(?:-|~|～|—|－|–|至|到)\s?"
_AMOUNT_RE = re.compile(
    rf"(?:{_PREFIX})?{_NUM}(?:{_MAG}?{_UNIT}?{_RANGE_SEP}{_NUM})?{_MAG}?(?:多|余)?{_UNIT}?{_PER}"
)
_CN_DIGIT = "零一二两三四五六七八九十百千万亿"
# Chinese-numeral amounts only with units that rarely form ordinary words ("三成", "五倍").
_CN_AMOUNT_RE = re.compile(rf"[{_CN_DIGIT}]{{1,6}}(?:个百分点|个基点|成|倍|亿|万(?:亿)?|个月|年)")

_SEASON = r"(?:第?[一二三四1-4]季度|[上下]半年|前三季度|年初|年底|年末|年中)"
_MONTH_TAIL = r"(?:初|底|末|中旬|上旬|下旬|份)"
_DATE_RE = re.compile(
    r"\d{4}\s?(?:-|—|~|～|至|到)\s?\d{4}年(?:度)?"
    rf"|\d{{4}}年(?:\d{{1,2}}月(?:\d{{1,2}}日)?{_MONTH_TAIL}?|{_SEASON}|度)?"
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    rf"|(?:今年|去年|明年|前年|上年|同年|当年)(?:\d{{1,2}}月(?:\d{{1,2}}日)?{_MONTH_TAIL}?|{_SEASON})"
    rf"|(?<!\d)\d{{1,2}}月\d{{1,2}}日|(?<!\d)\d{{1,2}}月{_MONTH_TAIL}?(?!\d)|(?<![\d月])\d{{1,2}}日"
)

# Organisation names end in one of these; the start is found by walking left (see _org_start).
_ORG_SUFFIX = (
    r"(?:股份有限公司|有限责任公司|有限公司|公司|集团|控股|股份|银行|证券|基金|资本|资管|信托|保险|期货"
    r"|研究院|研究所|研究中心|协会|商会|联合会|学会|委员会|管委会|银保监会|证监会|证监局|保监会|监管局"
    r"|交易所|结算所|事务所|统计局|外汇局|[\u4e00-\u9fff]{2}局|[\u4e00-\u9fff]{2}部|[\u4e00-\u9fff]{1,2}厅"
    r"|办公厅|国务院|央行|中心|大学|学院|科技|汽车|电子|能源|医药|药业|电气|化工|材料|实业|传媒|网站|日报"
    r"|晚报|报社|证券报|时报|通讯社|新闻社|财联社|电视台|智库|平台|官网)"
)
# Industry words end company short names ("长城汽车") but also plain nouns ("电子板块").
_WEAK_ORG_SUFFIX = re.compile(
    r"(?:控股|股份|证券|基金|资本|资管|信托|保险|期货|科技|汽车|电子|能源|医药|药业|电气|化工|材料|实业"
    r"|传媒|中心|平台)$"
)
_NOUN_AFTER = re.compile(
    r"板块|行业|产业|领域|企业|设备|产品|市场|技术|类|股|龙头|需求|消费|巨头|赛道|概念|指数|业务|公司|集团"
)
_ORG_RE = re.compile(rf"[\u4e00-\u9fffA-Za-z0-9（）()·]{{0,10}}?{_ORG_SUFFIX}")
# Left boundary words: the organisation starts after the last of these.
_ORG_LEFT_STOP = re.compile(
    r".*(?:据|由|在|对|为|与|和|及|向|被|将|从|把|让|给|是|会同|联合|以及|其中|如|包括|认为|表示|显示|称|指出"
    r"|旗下|目前|此前|的|了|于|获|等|则|也|都|已|该|其|这|那|是|有关|通过|经|由于|因为|根据|来源|：|当前|今年"
    r"|去年|近期|近日|未来|整个|所有|部分|相关|主要|国内|国外|全球|各|多家|一家|这家|该|展望|关注|重点)"
)
_TITLE = (
    r"(?:首席[\u4e00-\u9fff]{0,6}(?:分析师|经济学家|师|官)|分析师|经济学家|研究员|策略师|基金经理|创始人|董事长"
    r"|总经理|副总裁|总裁|CEO|CFO|主席|副主席|行长|副行长|部长|院长|所长|副所长|教授|负责人|理事长|专家|主任"
    r"|秘书长|发言人|合伙人|总监|董事|记者|被告人|实际控制人)"
)
_NAME = r"(?:[\u4e00-\u9fff]{1,6}(?:·[\u4e00-\u9fff]{1,8})+|[\u4e00-\u9fff]{2,3})"
_SPEECH = r"(?:表示|认为|称|指出|说|在|对|预计|强调|坦言|分析|告诉|接受|透露|介绍|提到|直言|建议|判断|则|也|还|曾|近日|此前|日前|发文|推文|撰文|：|:|，|,|。|\(|（|的|等|、)"
_NOT_NAME = r"(?!表示|认为|指出|称|说|介绍|透露|强调|预计|对|在|等|也|则|的|和|与|及|兼|是|为|将|已|曾|还|都|之)"
_PERSON_TITLE_RE = re.compile(rf"{_TITLE}(?:兼{_TITLE})?的?{_NOT_NAME}({_NAME})(?={_SPEECH})")
# Common surnames let us accept "张晓东表示" without a preceding title.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_PERSON_SPEECH_RE = re.compile(
    rf"(?<![\u4e00-\u9fff])([{_SURNAMES}][\u4e00-\u9fff]{{1,2}})(?=表示|认为|指出|称|坦言|强调|透露|介绍|直言|预计)"
)
_QUOTE_RE = re.compile(r"《[^《》]{1,40}》|“([^“”]{2,30})”|「([^「」]{2,30})」|\"([^\"]{2,30})\"")
_NAMING_RE = re.compile(
    r"(?:称为|叫做|叫作|名为|全称是|全称为|全称|简称为|简称|更名为|改名为|现名|又称|俗称|即为|命名为|品牌为)"
    r"[“「\"《]?([\u4e00-\u9fffA-Za-z0-9·\-]{2,24})"
)
_LATIN_RE = re.compile(
    r"(?<![A-Za-z0-9\-])[A-Za-z][A-Za-z0-9]*(?:[-·][A-Za-z0-9]+)*(?![A-Za-z0-9])"
)

# Enumerations: "A、B、C" and "A、B和C" / "A、B及C".
_LIST_ITEM = r"[^，。；：、,;:！？!?\s]{1,24}"
_LIST_RE = re.compile(
    rf"{_LIST_ITEM}(?:、{_LIST_ITEM})+(?:(?:和|及|以及|与|或)[^，。；：、,;:！？!?\s]{{1,16}})?"
)
_EXAMPLE_RE = re.compile(
    r"(?:比如|例如|譬如|诸如|包括|如)([^。；;！？!?]{2,80}?)(?:等等|等|。|；|;|$)"
)
_LIST_HEAD_CUT = re.compile(
    r".*(?:目前|当前|此前|其中|今年|去年|近期|比如|例如|譬如|诸如|包括|包含|涉及|会同|联合|以及|如|和|与|及|是|为|有|对|由|将|在|向|获)"
)
_LIST_TAIL_CUT = re.compile(
    r"(?:等等|等|共同|分别|均|都|也|已|将|被|在|的|是|为|合计|共计|联合|一起|之|以及|相继|纷纷|先后)"
)

_REASON_RE = re.compile(
    r"(?:由于|因为|因(?![素此而为数子])|鉴于|得益于|受益于|归因于|源于|原因是|原因为|原因在于|主要原因是?|原因：|基于原因"
    r"|主要基于|是因为)[：:]?\s*[^，。；;！？!?]{2,60}"
    r"|受[^，。；;]{2,20}(?:影响|拖累|推动|带动|提振)"
    r"|[^，。；;！？!?]{2,40}(?:导致|致使|使得|引发|造成)"
)
_YESNO_RE = re.compile(
    r"维持[^，。；;]{0,20}不变|保持[^，。；;]{0,20}不变|并非[^，。；;]{1,20}|并不[^，。；;]{1,20}|不是[^，。；;]{1,20}"
    r"|没有[^，。；;]{1,20}|尚未[^，。；;]{1,20}|未[^，。；;]{1,20}|暂不[^，。；;]{1,20}|不会[^，。；;]{1,20}"
    r"|(?:已经|已)[^，。；;]{1,20}|(?:确实|的确|仍然|仍)[^，。；;]{1,20}|(?:上调|下调|加息|降息|调升|调降)[^，。；;]{0,20}"
)


def _strip_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the longest of overlapping spans (earliest on ties)."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if all(s.end <= o.start or s.start >= o.end for o in out):
            out.append(s)
    return sorted(out, key=lambda s: s.start)


def _latin_or_digit(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "-.")


def date_spans(text: str) -> list[Span]:
    spans = []
    for m in _DATE_RE.finditer(text):
        s, e = m.span()
        if (s > 0 and _latin_or_digit(text[s - 1])) or (
            e < len(text) and text[e].isascii() and text[e].isalnum()
        ):
            continue
        g = m.group()
        # a bare "28日" or "5月" is a date, but a weak one
        strength = 1.0 if ("年" in g and "月" in g) or ("月" in g and "日" in g) else 0.7
        if re.fullmatch(r"\d{1,2}日", g):
            strength = 0.45
        spans.append(Span(s, e, QType.DATE, strength))
    return _strip_overlaps(spans)


def number_spans(text: str) -> list[Span]:
    dates = date_spans(text)
    spans = []
    for m in _AMOUNT_RE.finditer(text):
        s, e = m.span()
        g = m.group()
        # drop digits that belong to codes/models (HFO-1234yf, Q1, ET7, 2141001-1A)
        if s > 0 and _latin_or_digit(text[s - 1]):
            continue
        if e < len(text) and text[e].isascii() and text[e].isalnum():
            continue
        if any(not (e <= d.start or s >= d.end) for d in dates):
            # the part of a date range like "2021-2023年" is not an amount
            continue
        has_unit = bool(re.search(rf"{_MAG}|{_UNIT}$|%|‰", g)) or "/" in g
        strength = 1.0 if has_unit else (0.5 if "." in g or len(g) >= 3 else 0.3)
        spans.append(Span(s, e, QType.NUMBER, strength))
    for m in _CN_AMOUNT_RE.finditer(text):
        s, e = m.span()
        if m.group() in {"一年", "万亿"}:
            continue
        spans.append(Span(s, e, QType.NUMBER, 0.5))
    return _strip_overlaps(spans)


def _org_start(text: str, start: int, suffix_start: int) -> int:
    prefix = text[start:suffix_start]
    m = _ORG_LEFT_STOP.match(prefix)
    if m:
        start += m.end()
    return start


def entity_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _QUOTE_RE.finditer(text):
        if m.group().startswith("《"):
            spans.append(Span(m.start(), m.end(), QType.ENTITY, 0.8, "quote"))
        else:
            gi = next(i for i in (1, 2, 3) if m.group(i) is not None)
            spans.append(Span(m.start(gi), m.end(gi), QType.ENTITY, 0.7, "quote"))
    for m in _NAMING_RE.finditer(text):
        spans.append(Span(m.start(1), m.end(1), QType.ENTITY, 0.9, "name"))
    for m in _PERSON_TITLE_RE.finditer(text):
        spans.append(Span(m.start(1), m.end(1), QType.ENTITY, 1.0, "person"))
    for m in _PERSON_SPEECH_RE.finditer(text):
        spans.append(Span(m.start(1), m.end(1), QType.ENTITY, 0.7, "person"))
    for m in _ORG_RE.finditer(text):
        suffix = re.search(rf"{_ORG_SUFFIX}$", m.group())
        assert suffix is not None
        s = _org_start(text, m.start(), m.start() + suffix.start())
        if m.end() - s < 3:  # a bare suffix ("公司", "银行") names nothing
            continue
        strength = 0.8
        if _WEAK_ORG_SUFFIX.search(m.group()):
            if _NOUN_AFTER.match(text, m.end()):
                continue
            strength = 0.65
        spans.append(Span(s, m.end(), QType.ENTITY, strength, "org"))
    for m in _LATIN_RE.finditer(text):
        g = m.group()
        if len(g) < 2:
            continue
        strength = 0.8 if re.search(r"\d", g) or re.search(r"[A-Z].*[A-Z]", g) else 0.5
        spans.append(Span(m.start(), m.end(), QType.ENTITY, strength, "product"))
    # items of an enumeration are often names (stocks, companies) without a telltale suffix
    for ls in list_spans(text):
        for s, e in _list_items(text, ls.start, ls.end):
            if 2 <= e - s <= 8:
                spans.append(Span(s, e, QType.ENTITY, 0.45, "item"))
    return _strip_overlaps_prefer_strong(spans)


def _strip_overlaps_prefer_strong(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: (-s.strength, -(s.end - s.start), s.start)):
        if all(s.end <= o.start or s.start >= o.end for o in out):
            out.append(s)
    return sorted(out, key=lambda s: s.start)


def _list_items(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Item boundaries of an enumeration span (after trimming head/tail words)."""
    seg = text[start:end]
    parts = re.split(r"、|(?:和|及|以及|与|或)(?=[^、]*$)", seg)
    items = []
    pos = start
    for p in parts:
        i = text.find(p, pos)
        items.append((i, i + len(p)))
        pos = i + len(p)
    return items


def _token_suffix_len(s: str, limit: int) -> int:
    """Length of the longest run of whole jieba tokens ending ``s`` within ``limit`` chars."""
    n = 0
    for tok in reversed(_cut(s)):
        if n + len(tok) > limit:
            break
        n += len(tok)
    return n or min(len(s), limit)


def list_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _LIST_RE.finditer(text):
        s, e = m.span()
        seg = m.group()
        items = re.split("、", seg)
        inner = [len(x) for x in items[1:-1]] or [len(items[-1])]
        target = max(inner) + 2
        head = items[0]
        hm = _LIST_HEAD_CUT.match(head)
        if hm and hm.end() < len(head):
            s += hm.end()
        elif len(head) > target + 1:
            s += len(head) - _token_suffix_len(head, target + 1)
        tail = items[-1]
        tm = _LIST_TAIL_CUT.search(tail)
        cut_tail = len(tail)
        if tm and tm.start() > 0:
            cut_tail = tm.start()
        elif len(tail) > target + 2:
            cut_tail = target
        e -= len(tail) - cut_tail
        if e - s >= 4:
            spans.append(Span(s, e, QType.LIST, 1.0))
    for m in _EXAMPLE_RE.finditer(text):
        spans.append(Span(m.start(1), m.end(1), QType.LIST, 0.6))
    return _strip_overlaps(spans)


def reason_spans(text: str) -> list[Span]:
    spans = [Span(m.start(), m.end(), QType.REASON, 1.0) for m in _REASON_RE.finditer(text)]
    return _strip_overlaps(spans)


def yesno_spans(text: str) -> list[Span]:
    spans = []
    for m in _YESNO_RE.finditer(text):
        g = m.group()
        strong = g.startswith(("维持", "保持", "并非", "并不", "不是", "没有", "尚未"))
        spans.append(Span(m.start(), m.end(), QType.YESNO, 1.0 if strong else 0.6))
    return _strip_overlaps(spans)


_DETECTORS = {
    QType.NUMBER: number_spans,
    QType.DATE: date_spans,
    QType.ENTITY: entity_spans,
    QType.LIST: list_spans,
    QType.REASON: reason_spans,
    QType.YESNO: yesno_spans,
}


def find_spans(text: str, qtype: QType) -> list[Span]:
    """Typed spans of ``text`` that could answer a question of type ``qtype``."""
    det = _DETECTORS.get(qtype)
    return det(text) if det else []


# --------------------------------------------------------------------------- question terms

_QWORD_RE = re.compile(
    r"多少钱|多少|几[个家只位次倍成岁年天名人条项款台辆套吨号月日]?|多大|多高|多长|多久|多远|多重|多快|什么时候|什么时间"
    r"|啥时候|啥时|何时|哪一?[天年月日家个款只位些种部所类条]|哪几|哪里|哪儿|在哪|哪|谁|什么|啥|咋|怎么样|怎么|怎样|如何"
    r"|为什么|为何|为啥|怎么会|是否|有没有|是不是|吗|呢|吧|呀|啊|嘛"
)
_STOP = frozenset(
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


@dataclass(frozen=True)
class _Term:
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


def content_terms(question: str) -> list[str]:
    """The question's content words (jieba tokens minus stopwords and question words)."""
    return [t.text for t in _terms(question) if t.pattern is None]


@lru_cache(maxsize=2048)
def _terms(question: str) -> tuple[_Term, ...]:
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
        for tok in _cut(chunk):
            tok = tok.strip()
            if not tok or tok in _STOP or re.fullmatch(r"\W+", tok):
                continue
            if len(tok) == 1 and not re.fullmatch(r"[\u4e00-\u9fffA-Za-z0-9]", tok):
                continue
            w = 0.4 if len(tok) == 1 else min(len(tok), 4) / 2
            out[tok] = max(out.get(tok, 0.0), w)
    _boost_focus(question, out)
    terms = [_Term(t, w) for t, w in out.items()]
    for name, q_rx, p_rx in _CONCEPTS:
        if q_rx.search(question):
            terms.append(_Term(name, 0.8, p_rx))
    return tuple(terms)


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


def _bigrams(s: str) -> set[str]:
    return {s[i : i + 2] for i in range(len(s) - 1)}


def _term_match(term: _Term, text: str) -> float:
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
    if len(t) == 2 and re.fullmatch(r"[\u4e00-\u9fff]{2}", t):
        hit = sum(1 for c in t if c in text)
        return 0.2 * hit / 2
    return 0.0


def _term_positions(term: str, text: str) -> list[int]:
    out, i = [], text.find(term)
    while i >= 0:
        out.append(i)
        i = text.find(term, i + 1)
    return out


# --------------------------------------------------------------------------- segmentation

_SENT_END = set("。！？!?；;\n")
_CLAUSE_END = set("，,：:")
_OPEN = "（(《“「【[‘"
_CLOSE = "）)》”」】]’"


def _split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence boundaries, never splitting inside brackets or quotes."""
    out, start, depth = [], 0, 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in _SENT_END and (depth == 0 or ch == "\n"):
            if ch == "\n":
                depth = 0
            if i + 1 > start:
                out.append((start, i + 1))
            start = i + 1
    if start < len(text):
        out.append((start, len(text)))
    return [(s, e) for s, e in out if text[s:e].strip()]


def _split_clauses(text: str, s0: int, e0: int) -> list[tuple[int, int]]:
    out, start, depth = [], s0, 0
    for i in range(s0, e0):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in _CLAUSE_END and depth == 0:
            out.append((start, i + 1))
            start = i + 1
    if start < e0:
        out.append((start, e0))
    return out


_TRIM_CHARS = " \t\r\n，,：:；;。！？!?、"


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in _TRIM_CHARS:
        s += 1
    while e > s and text[e - 1] in _TRIM_CHARS:
        e -= 1
    return s, e


# --------------------------------------------------------------------------- extraction


@dataclass
class _Cand:
    score: float
    pidx: int
    start: int
    end: int
    span: Span | None
    coverage: float
    prox: float


def _passage_weights(passages: Sequence[ScoredChunk]) -> list[float]:
    scores = [max(float(p.score), 0.0) for p in passages]
    top = max(scores) if scores else 0.0
    out = []
    for rank, sc in enumerate(scores):
        rel = sc / top if top > 0 else 1.0
        out.append(max(0.5, 0.75 + 0.25 * rel - 0.03 * rank))
    return out


def _span_fit(
    span: Span, qtype: QType, question: str, text: str, sub: str, unit: str | None
) -> float:
    """How well a detected span fits what the question wants (0..~1.5)."""
    fit = span.strength
    g = text[span.start : span.end]
    if qtype is QType.NUMBER and unit and re.search(rf"{re.escape(unit)}(?:/\w+)?$", g):
        fit += 0.6
    if qtype is QType.DATE:
        if re.search(r"哪天|哪一天|哪日|几号|几日|日期", question) and "日" in g:
            fit += 0.3
        if re.search(r"哪年|哪一年", question) and "年" in g:
            fit += 0.3
    if qtype is QType.ENTITY and sub:
        if span.sub == sub or (sub == "name" and span.sub == "quote"):
            fit += 0.4
        elif sub == "product" and span.sub in {"org", "item"}:
            fit += 0.15  # stock and product names often look like company names
        elif sub == "org" and span.sub in {"item", "quote"}:
            fit += 0.1
    return fit


def _is_in_question(g: str, question: str) -> bool:
    g = g.strip('《》“”「」"')
    return len(g) >= 2 and g in question


_BIND_RE = re.compile(r"[，,：:；;（）()]")


def _distance(text: str, a: int, b: int, p: int, plen: int) -> float:
    """Distance from a term occurrence at ``p`` to span ``[a, b)``; clause breaks count extra,
    because a term in the next clause usually belongs to another statement."""
    if p + plen <= a:
        gap = text[p + plen : a]
    elif p >= b:
        gap = text[b:p]
    else:
        return 0.0
    return len(gap) + 8 * len(_BIND_RE.findall(gap))


def _idf_weights(terms: Sequence[_Term], passages: Sequence[ScoredChunk]) -> dict[str, float]:
    """Down-weight terms found in most sentences of the candidates: they name the topic all
    passages share, not the statement that answers (e.g. the predicate "生效")."""
    sents = [sc.chunk.text[a:b] for sc in passages for a, b in _split_sentences(sc.chunk.text)]
    n = len(sents)
    out = {}
    for t in terms:
        if n < 3:
            out[t.text] = t.weight
            continue
        df = sum(1 for x in sents if _term_match(t, x) >= 1.0)
        out[t.text] = t.weight * (0.5 + 0.5 * (1.0 - df / n))
    return out


def _windows(
    text: str, clauses: list[tuple[int, int]], max_chars: int, spans_abs: list[Span]
) -> list[tuple[int, int]]:
    """Windows of up to four adjacent clauses that fit in ``max_chars``; a single clause
    that is too long is cut around each typed span it holds (never inside the span)."""
    out = []
    for i in range(len(clauses)):
        for j in range(i, min(len(clauses), i + 4)):
            ws, we = _trim(text, clauses[i][0], clauses[j][1])
            if we <= ws:
                continue
            if we - ws > max_chars:
                if i == j:
                    for sp in spans_abs:
                        if ws <= sp.start and sp.end <= we and sp.end - sp.start <= max_chars:
                            room = max_chars - (sp.end - sp.start)
                            a = max(ws, sp.start - room * 2 // 3)
                            b = min(we, a + max_chars)
                            a = max(ws, min(a, sp.start))
                            out.append((a, max(b, sp.end)))
                break
            out.append((ws, we))
    return out


def extract_answer(
    question: str,
    passages: Sequence[ScoredChunk],
    *,
    max_chars: int = 120,
    top_k: int = 5,
    _trace: list | None = None,
) -> Extraction | None:
    """The best short verbatim answer to ``question`` from the top ``passages``, or None.

    ``confidence`` mixes how much of the question's content is found around the chosen
    clause with whether a span of the wanted type was found there; callers combine it
    with retrieval scores to decide whether to abstain.
    """
    passages = list(passages)[:top_k]
    if not passages or not question.strip():
        return None
    qtype = classify_question(question)
    terms = _terms(question)
    idf = _idf_weights(terms, passages)
    total_w = sum(idf.values()) or 1.0
    raw_total = sum(t.weight for t in terms) or 1.0
    sub = _entity_subkind(question) if qtype is QType.ENTITY else ""
    unit = _unit_hint(question) if qtype is QType.NUMBER else None
    pweights = _passage_weights(passages)
    # a figure, date or name wants the tightest clause; lists and reasons need room
    len_rate = 0.9 if qtype in (QType.NUMBER, QType.DATE, QType.ENTITY) else 0.5

    best: _Cand | None = None
    for pidx, sc in enumerate(passages):
        text = sc.chunk.text
        if not text.strip():
            continue
        title = sc.chunk.title or ""
        title_m = {t.text: _term_match(t, title) for t in terms}
        passage_m = {t.text: _term_match(t, text) for t in terms}
        sentences = _split_sentences(text)
        for si, (ss, se) in enumerate(sentences):
            sent = text[ss:se]
            sent_m = {t.text: _term_match(t, sent) for t in terms}
            # neighbourhood: the sentences around it (context the clause relies on)
            ns = sentences[max(0, si - 1)][0]
            ne = sentences[min(len(sentences) - 1, si + 1)][1]
            near_m = {t.text: _term_match(t, text[ns:ne]) for t in terms}
            spans = []
            if qtype is not QType.OTHER:
                for sp in find_spans(sent, qtype):
                    if not _is_in_question(sent[sp.start : sp.end], question):
                        spans.append(Span(ss + sp.start, ss + sp.end, sp.kind, sp.strength, sp.sub))
            occ = [
                (ss + p, len(t.text), t.text)
                for t in terms
                if t.pattern is None and len(t.text) >= 2
                for p in _term_positions(t.text, sent)
            ]
            clauses = _split_clauses(text, ss, se)
            for ws, we in _windows(text, clauses, max_chars, spans):
                wtext = text[ws:we]
                cov_w = 0.0
                cov_ctx = 0.0
                for t in terms:
                    local = _term_match(t, wtext)
                    rest = max(
                        0.55 * sent_m[t.text],
                        0.35 * near_m[t.text],
                        0.2 * passage_m[t.text],
                        0.3 * title_m[t.text],
                    )
                    cov_w += idf[t.text] * max(local, rest)
                    cov_ctx += t.weight * max(
                        local,
                        sent_m[t.text],
                        0.8 * near_m[t.text],
                        0.5 * passage_m[t.text],
                        0.5 * title_m[t.text],
                    )
                coverage = cov_w / total_w
                ctx_cov = cov_ctx / raw_total
                win_occ = [o for o in occ if ws <= o[0] and o[0] + o[1] <= we]
                best_span, best_fit, best_prox = None, 0.0, 0.0
                for sp in spans:
                    if sp.start < ws or sp.end > we:
                        continue
                    fit = _span_fit(sp, qtype, question, text, sub, unit)
                    prox = 0.0
                    if win_occ:
                        d = min(_distance(text, sp.start, sp.end, p, n) for p, n, _ in win_occ)
                        prox = 1.0 / (1.0 + d / 8.0)
                    if fit + 0.5 * prox > best_fit + 0.5 * best_prox:
                        best_span, best_fit, best_prox = sp, fit, prox
                length = we - ws
                # windows that are little more than the span cannot stand alone
                rest_len = length - ((best_span.end - best_span.start) if best_span else 0)
                short_pen = 0.25 if rest_len < 5 else 0.0
                score = (
                    pweights[pidx] * (2.0 * coverage + 0.9 * best_fit + 0.5 * best_prox)
                    - len_rate * length / 120.0
                    - short_pen
                )
                if qtype is not QType.OTHER and best_span is None:
                    score -= 0.6
                if _trace is not None:
                    _trace.append(
                        (
                            round(score, 3),
                            wtext,
                            best_span and text[best_span.start : best_span.end],
                            round(coverage, 2),
                            round(best_fit, 2),
                            round(best_prox, 2),
                        )
                    )
                if best is None or score > best.score + 1e-9:
                    best = _Cand(score, pidx, ws, we, best_span, ctx_cov, best_prox)
    if best is None:
        return None
    text = passages[best.pidx].chunk.text
    a_text = text[best.start : best.end]
    hl = None
    if best.span is not None:
        hl = (best.span.start - best.start, best.span.end - best.start)
    has_span = 1.0 if best.span is not None else 0.0
    if qtype is QType.OTHER:
        has_span = 0.5
    conf = 0.05 + 0.6 * min(1.0, best.coverage) + 0.2 * has_span + 0.15 * best.prox
    # a question whose terms barely appear is probably not answered here at all
    if best.coverage < 0.3:
        conf *= 0.6
    conf = max(0.0, min(1.0, conf))
    return Extraction(a_text, hl, best.pidx, qtype, round(conf, 4))
