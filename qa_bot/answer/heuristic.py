"""Short extractive answers: pick the clause or sentence of a retrieved passage that answers
a question.

Pipeline: classify the question (what kind of answer is wanted) → extract the question's
content terms and its shape (the wording left and right of the wh-phrase) → split the top
passages into sentences and clauses → score windows by
  * term coverage (idf-weighted, with the sentence's neighbourhood as context),
  * character-level alignment: how much of the question's wording the sentence repeats
    (long common substrings count most; words shared by most sentences count less),
  * the wh-slot: the text between the sentence's match of the question's left part and of
    its right part ("生命数耗完即算为什么" ↔ "…即算为踢爆"),
  * a typed span of the wanted kind (figure, date, name, place, list, cause, verdict),
    its proximity to the matched terms, minus names that merely repeat the question's
    subject,
  * the passage's retrieval rank;
→ return the best window verbatim (with its sentence-final "。" when it ends the sentence):
the clause(s) with the span for figures, dates, names and places, the whole sentence for
descriptions, reasons, lists and the rest; always within ``max_chars``.

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

from .text import clause_bounds as _split_clauses
from .text import sentence_bounds as _split_sentences
from .text import trim as _trim

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
    LOCATION = "location"
    DESCRIPTION = "description"
    OTHER = "other"


# Types whose answer is a phrase (a figure, a date, a name, a place): the answer is the clause
# holding the span plus its subject. The others want a whole statement: the full sentence.
_SHORT_TYPES = frozenset({"number", "date", "entity", "location"})


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
    r"(?<![称之作成视认改名译即算封定列选命])为什么|为何|为啥|原因|怎么会|咋会|凭什么|何故|缘何|什么导致|啥导致|因为什么|因为啥|干嘛要|为了什么"
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

# Description questions want a statement, not a name: "有什么特点", "用途是什么", "体现在哪里".
_DESC_NOUN = (
    r"(?:特点|特色|特征|特性|用途|作用|功能|功用|背景|意义|重要性|影响|区别|差别|差异|不同之处|贡献|成就"
    r"|经历|经过|过程|记载|描述|评价|主张|寓意|象征|含义|涵义|目的|职责|形状|外观|外形|样子|结构|性质|状态"
    r"|规定|症状|习性|风格|理念|思想|观点|看法|态度|反应|后果|好处|坏处|优势|优点|缺点|弊端|方式|方法|办法"
    r"|关系|定义|事迹|遭遇|情形|状况|变化|做法|措施|工作)"
)
_DESC_Q = re.compile(
    rf"{_DESC_NOUN}(?:是|有|为|在于|主要是|主要有|主要为)?(?:什么|啥|哪些|怎样|如何|怎么样)"
    rf"|(?:什么|啥|哪些|怎样的|怎么样的|何种|什么样的?)(?:主要)?{_DESC_NOUN}"
    r"|(?:怎么|如何|怎样)(?:形成|产生|演变|发展|处理|解决|运作|进行|实现|评价)|体现在哪|表现在哪"
    r"|有怎样|是怎样|做什么|干什么|发生了什么|遭遇了什么|经历了什么|什么事|象征着?什么|代表着?什么|意味着什么"
)
_DESC_WEAK_Q = re.compile(r"如何|怎么(?!会|样)|怎样|怎么样")
_LOCATION_Q = re.compile(
    r"在哪|哪里|哪儿|何处|何地|什么地方|啥地方|哪个(?:国家|城市|省份?|地区|地方|州|县|市|区|镇)"
    r"|哪[国省市县州座城](?!家)|位于|坐落|原产|产地|发源地|出生地|籍贯|哪国人"
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
    if _DESC_Q.search(q):
        return QType.DESCRIPTION
    if _LIST_Q.search(q):
        return QType.LIST
    if _NUMBER_Q.search(q):
        return QType.NUMBER
    if _LOCATION_Q.search(q):
        return QType.LOCATION
    if _DESC_WEAK_Q.search(q):
        return QType.DESCRIPTION
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

# Historical and coarse dates: centuries, decades, era years ("正德五年（1510年）"), seasons.
_CN_NUM = "一二三四五六七八九十"
_DATE_COARSE_RE = re.compile(
    rf"(?:公元前?)?(?:\d{{1,2}}|[{_CN_NUM}]{{1,3}})世纪(?:[初中末]期|[上下]半叶|初|中|末|\d{{1,2}}年代)?"
    rf"|(?:公元前?)?\d{{1,4}}年代(?:[初中末]期|初|中|末)?"
    rf"|[\u4e00-\u9fff]{{2}}(?:(?:元|[{_CN_NUM}]{{1,3}})年(?:（\d{{3,4}}年）)?|\d{{1,2}}年（\d{{3,4}}年）)"
    rf"(?:[{_CN_NUM}]{{1,3}}月)?"
    r"|公元前?\d{1,4}年|(?<![\d.])\d{3}年(?![代度])"
    r"|(?:每年)?(?:春|夏|秋|冬)(?:季|天|末|初)|(?:夏至|冬至|春分|秋分)"
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
    for m in _DATE_COARSE_RE.finditer(text):
        g = m.group()
        if re.match(rf"[\u4e00-\u9fff]{{2}}(?:元|[{_CN_NUM}]{{1,3}}|\d{{1,2}})年", g) and g[:2] in {
            "去年",
            "今年",
            "明年",
            "前年",
            "同年",
            "当年",
            "上年",
            "多年",
            "近年",
            "每年",
            "十年",
            "百年",
        }:
            continue
        spans.append(Span(m.start(), m.end(), QType.DATE, 0.6))
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


# Places: a locative verb and its object ("位于湖南省长沙县东北部", "生于乌拉圭蒙得维的亚"), or a
# name ending in an administrative/geographic suffix.
_LOC_VERB_STRONG = (
    r"(?:位于|坐落于|座落于|坐落在|地处|出生于|出生在|生于|原产于|原产地为|原产地是|原产|产于|分布于"
    r"|分布在|发源于|起源于|源于|来自|定居于|定居在|总部设于|总部设在|总部位于|设于|设在|发现于"
    r"|举行于|就读于|祖籍|籍贯)"
)
_LOC_VERB_RE = re.compile(rf"(?:{_LOC_VERB_STRONG}|[在于])([^，。；;！？!?\n]{{2,40}})")
_PLACE_RE = re.compile(
    r"[\u4e00-\u9fff·]{1,10}?(?:省|市|县|区|镇|乡|村|州|国|岛|半岛|山|河|湖|街|路|号|港|湾|洲|城|郡|府"
    r"|群岛|地区|大道)"
)


def location_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _LOC_VERB_RE.finditer(text):
        strong = not re.fullmatch(r"[在于]", text[m.start() : m.start(1)])
        obj = m.group(1)
        placey = _PLACE_RE.search(obj) is not None
        if not strong and not placey:
            continue
        strength = (1.0 if strong else 0.5) + (0.2 if placey else 0.0)
        spans.append(Span(m.start(), m.end(), QType.LOCATION, strength, "place"))
    for m in _PLACE_RE.finditer(text):
        g = m.group()
        s = (
            m.start() + len(_ORG_LEFT_STOP.match(g).group())
            if _ORG_LEFT_STOP.match(g)
            else m.start()
        )
        if m.end() - s >= 2:
            spans.append(Span(s, m.end(), QType.LOCATION, 0.5, "place"))
    for sp in entity_spans(text):
        if sp.sub in {"org", "quote"}:
            spans.append(Span(sp.start, sp.end, QType.LOCATION, 0.4, sp.sub))
    return _strip_overlaps_prefer_strong(spans)


_DETECTORS = {
    QType.LOCATION: location_spans,
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
    focus = _desc_focus(question)
    if focus:
        # "夜来香的种子有什么特点": "特点" is what is asked, not a word the answer repeats;
        # the noun it is about ("种子") is what the answering sentence talks about
        noun, head = focus
        if noun in out:
            out[noun] *= 0.3
        if head in out:
            out[head] = max(out[head] * 1.5, 1.0)
    terms = [_Term(t, w) for t, w in out.items()]
    for name, q_rx, p_rx in _CONCEPTS:
        if q_rx.search(question):
            terms.append(_Term(name, 0.8, p_rx))
    return tuple(terms)


_DESC_NOUN_RE = re.compile(_DESC_NOUN)


@lru_cache(maxsize=2048)
def _desc_focus(question: str) -> tuple[str, str] | None:
    """For a description question, ``(description noun, the word before it)``:
    "夜来香的种子有什么特点" → ("特点", "种子")."""
    if not _DESC_Q.search(question):
        return None
    m = _DESC_NOUN_RE.search(question)
    if not m:
        return None
    before = _WH_RE.sub("", question[: m.start()])
    before = re.sub(r"(?:的|之|是|有|为|主要|样)+$", "", before)
    head = re.split(r"[的之，,、\s]", before)[-1]
    if 1 <= len(head) <= 4 and not re.search(r"[是有在了]", head):
        return m.group(), head
    toks = [
        t for t in _cut(before) if re.fullmatch(r"[\u4e00-\u9fffA-Za-z0-9]+", t) and t not in _STOP
    ]
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


_PRED_STOP_RE = re.compile(r"[，,。？?！!、；;：:\s]")


@lru_cache(maxsize=2048)
def _predicate_terms(question: str) -> tuple[str, ...]:
    """The words that say what happened, for a figure or date question: those right after
    the wh-phrase ("什么时候|恢复发行的", "多少|会触发敲入"). An answer about the same
    subject but another event ("雪球产品突然爆红" for "雪球产品什么时候恢复发行") contains
    none of them."""
    m = _WH_RE.search(question)
    if not m:
        return ()
    after = _TAIL_PARTICLES.sub("", _PRED_STOP_RE.split(question[m.end() :], maxsplit=1)[0])
    # "多少厘米": a unit after the wh-phrase says nothing of the event; and the words before
    # it are too often paraphrased ("保持多少年" for "已连续12年") to be required
    if not after or re.fullmatch(rf"(?:{_UNIT}|{_MAG}|[\u4e00-\u9fff])(?:{_UNIT})?", after):
        return ()
    return tuple(
        t for t in _cut(after) if t not in _STOP and re.fullmatch(r"[\u4e00-\u9fffA-Za-z0-9]+", t)
    )


def _says(word: str, text: str) -> bool:
    """``text`` mentions ``word``, allowing reordered two-character words (能产/产能) and
    partial matches of longer ones."""
    if word in text:
        return True
    if len(word) == 2:
        return all(c in text for c in word) and ("\u4e00" <= word[0] <= "\u9fff")
    return len(word) > 2 and any(word[i : i + 2] in text for i in range(len(word) - 1))


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
    if len(t) == 2 and "\u4e00" <= t[0] <= "\u9fff" and "\u4e00" <= t[1] <= "\u9fff":
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




# --------------------------------------------------------------------------- alignment

# Wh-phrases: where the answer stands in the question ("生命数耗完即算为什么" ↔ "…即算为踢爆").
_WH_RE = re.compile(
    r"什么时候|什么时间|什么地方|(?<![称之作成视认改名译即算封定列选命])为什么|什么样的?|什么|啥时候|啥地方|啥"
    r"|为何|为啥|如何|怎么样|怎样|怎么"
    r"|何时|何处|何地|何人|何种|何谓|多少钱|多少|多大|多高|多长|多久|多远|多重|多快|谁|在哪里|在哪儿|在哪"
    r"|哪里|哪儿|哪一?[天年月日家个款只位些种部所类条座国省市]|哪几[个家种类项只位条样座]?|哪"
    r"|几[个家只位次倍成岁年天名人条项款台辆套吨号月日座种]?"
)
_Q_PUNCT_RE = re.compile(r"[\s，。？！、；：,.?!;:“”‘’\"'（）()《》<>【】\[\]…—·]+")
_TAIL_PARTICLES = re.compile(r"(?:的|了|呢|吗|吧|啊|呀|嘛|来着|[\s？?。！!，,])*$")
_SENT_FINAL = "。！？!?"


_DEF_FIRST_RE = re.compile(r"^(?:什么是|啥是|何谓|何为)(.+?)[？?。\s]*$")


_DEF_RE = re.compile(
    r"^(.{2,16}?)(?:的定义|的意思|指的?|是指|又称之?为?|也称|也叫|又叫|又名|别名|别称|简称|全称)?"
    r"(?:是|为)?(?:什么|啥)(?:意思)?[？?。\s]*$"
)


@dataclass(frozen=True)
class _QShape:
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
def _qshape(question: str) -> _QShape:
    q = question.strip()
    # "什么是X" / "何谓X" asks what "X是…" says
    d = _DEF_FIRST_RE.match(q)
    if d:
        q = d.group(1) + "是什么"
    focus = _desc_focus(question)
    bare = _WH_RE.sub(" ", q)
    if focus:
        bare = bare.replace(focus[0], " ")
    segs = tuple(x for x in _Q_PUNCT_RE.split(bare) if len(x) >= 2)
    total = sum(len(x) for x in segs)
    m = _WH_RE.search(q)
    left: list[tuple[str, float]] = []
    right: list[tuple[str, float]] = []
    if m:
        lq = _Q_PUNCT_RE.split(q[: m.start()])[-1]
        rq = _TAIL_PARTICLES.sub("", q[m.end() :])
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
    topic = focus[1] if focus else ""
    d = _DEF_RE.match(q)
    if d and not topic:
        topic = d.group(1)  # "X是什么", "X又称什么": X's defining sentence starts with X
    return _QShape(segs, total, tuple(left), tuple(right), topic)


def _align_runs(shape: _QShape, sent: str) -> tuple[tuple[int, int], ...]:
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


def _align_score(runs: Sequence[tuple[int, int]], cw: Sequence[float], total: float) -> float:
    """Weighted share of the question covered by ``runs``."""
    if total <= 0:
        return 0.0
    return sum(_align_weights(runs, cw)) / total


def _align(shape: _QShape, sent: str) -> float:
    """Character-level alignment of the question with ``sent`` in [0, 1] (unweighted)."""
    return _align_score(_align_runs(shape, sent), [1.0] * shape.total, float(shape.total))


def _anchor_hits(pieces: Sequence[tuple[str, float]], text: str, at_end: bool) -> dict[int, float]:
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


_CLAUSE_BREAK = set("，,：:；;。！？!?\n")


def _wh_span(
    text: str, ss: int, se: int, lhits: dict[int, float], rhits: dict[int, float]
) -> tuple[int, int, float] | None:
    """The part of sentence ``text[ss:se]`` that stands where the question has its wh-phrase:
    between the best match of the question's left part and of its right part (or from the
    left match to the clause end / from the clause start to the right match)."""
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
        while e < se and text[e] not in _CLAUSE_BREAK:
            e += 1
        if e - lp >= 1 and (best is None or lq > best[0]):
            best = (lq, lp, e)
    for rp, rq in rs:
        b = rp
        while b > ss and text[b - 1] not in _CLAUSE_BREAK:
            b -= 1
        if rp - b >= 1 and (best is None or rq > best[0]):
            best = (rq, b, rp)
    if best is None:
        return None
    a, b = _trim(text, best[1], best[2])
    if b <= a:
        return None
    return a, b, min(1.0, best[0] / 8.0)


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
    align: float = 0.0


# Scoring weights (tuned on CMRC trial / finews dev samples; see the module docstring).
_RANK_PEN = 0.1  # passage weight lost per retrieval rank: the top passage is usually right
_W_TOPIC = 0.3  # alignment bonus: the sentence starts with what the question is about
_W_ELSEWHERE = 0.4  # question words found elsewhere in the passage count this much
_PAIR_TYPES = (QType.REASON, QType.DESCRIPTION, QType.LIST, QType.OTHER)  # may answer with two sentences
_WH_BASE = 0.1  # fit of the wh-slot span: base + gain * match quality
_WH_GAIN = 0.6
# confidence = _C0 + fit + span + proximity + margin over the runner-up sentence
_C0, _C_FIT, _C_SPAN, _C_PROX, _C_MARGIN = 0.05, 0.45, 0.1, 0.05, 0.45
_C_MSCALE = 2.0  # score margin that counts as fully clear
_C_NO_PREDICATE = 0.3  # figure/date answer that says nothing of the event asked about


def _passage_weights(passages: Sequence[ScoredChunk]) -> list[float]:
    scores = [max(float(p.score), 0.0) for p in passages]
    top = max(scores) if scores else 0.0
    out = []
    for rank, sc in enumerate(scores):
        rel = sc / top if top > 0 else 1.0
        out.append(max(0.5, 0.75 + 0.25 * rel - _RANK_PEN * rank))
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


def _sentence_end(text: str, we: int, ws: int, max_chars: int) -> int:
    """Extend a window that stops right before the sentence-final mark to include it
    (gold answers quote whole sentences with their "。")."""
    if we < len(text) and text[we] in _SENT_FINAL and we + 1 - ws <= max_chars:
        return we + 1
    return we


def _final_window(
    text: str, start: int, end: int, span: Span | None, short: bool, max_chars: int
) -> tuple[int, int]:
    """The answer a winning window becomes: for a figure/date/name/place question without a
    typed span, the whole sentence (the slot is known only by its position); the
    sentence-final mark when the window ends the sentence."""
    if short and (span is None or span.sub == "wh"):
        for ss, se in _split_sentences(text):
            if ss <= start < se:
                fs, fe = _trim(text, ss, se)
                if fe - fs <= max_chars and fs <= start and end <= fe:
                    start, end = fs, fe
                break
    return start, _sentence_end(text, end, start, max_chars)


def _subject_penalised(g: str, qterms: Sequence[str]) -> bool:
    """A name that contains one of the question's own content words is usually the subject
    the question is about ("加拿大…哪家公司" → not "加拿大年金计划委员会")."""
    return any(t in g for t in qterms)


# The window score is WEIGHTS · features. The weights were set by hand on the dev sets;
# ``scripts/train_extractor.py`` fits them instead (a conditional logit over each question's
# windows, the windows holding the gold answer being the positives) and cross-validates.
# Measured 2026-12-01 (extractor alone, top 5 passages): learned weights reach CMRC trial
# answer_hit 0.718 cross-validated vs 0.712 by hand, but finews 0.750 vs 0.821, so the
# hand weights stay.
FEATURES = (
    "coverage",  # idf-weighted question terms in the window (context counts partly) × passage weight
    "align",  # character alignment of the question with the sentence × passage weight
    "fit",  # how well the best typed span fits what is asked × passage weight
    "prox",  # closeness of that span to the question's words × passage weight
    "dense",  # e5 similarity of the sentence, rescaled over the candidates × passage weight
    "len_short",  # window length / 120, for figure/date/name/place questions
    "len_long",  # window length / 120, for the others
    "bare_span",  # the window is little more than the span
    "nospan_name",  # name/place question, no typed nor wh span in the window
    "nospan_other",  # other typed question, no span
    "wh_only",  # figure/date question answered by the wh-slot alone
    "first_sentence",  # first sentence of its passage (definitions, subjects)
    "pair",  # window of two sentences (description, list, other; reasons pair freely)
    "rank",  # passage's retrieval rank / 4
    "dense_top",  # the sentence most similar to the question (e5)
    "align_top",  # the sentence that repeats most of the question
    "wh_slot",  # quality of the wh-slot match inside the window
    "lcs",  # longest common substring with the question (/10, capped)
)
_HAND_WEIGHTS = {
    "coverage": 2.0,
    "align": 2.5,
    "fit": 0.9,
    "prox": 0.5,
    "dense": 0.5,  # helps paraphrased finews questions, neutral on CMRC
    "len_short": -0.9,  # a figure, date or name wants the tightest clause
    "len_long": -0.15,  # statements are returned whole
    "bare_span": -0.25,
    "nospan_name": -0.3,
    "nospan_other": -0.6,
    "wh_only": -0.45,  # a figure or date question wants the figure or date itself
    "pair": -0.4,  # one sentence, unless the second adds what is asked
}  # the others: 0
WEIGHTS = tuple(_HAND_WEIGHTS.get(f, 0.0) for f in FEATURES)


def _sentence_align(
    aw: Sequence[float], pmax: Sequence[float], cw_total: float, topic: str, text: str, ss: int, se: int
) -> float:
    """Alignment of a sentence with the question: its own matches, plus words of the
    question said elsewhere in the passage (often its subject, left implicit in later
    sentences), which count partly."""
    align = (sum(aw) + _W_ELSEWHERE * sum(max(0.0, p - a) for p, a in zip(pmax, aw, strict=True))) / (
        cw_total or 1.0
    )
    if topic:
        ts, _ = _trim(text, ss, se)
        if text.startswith(topic, ts):
            align += _W_TOPIC
        elif topic not in text[ss:se]:
            align *= 0.6
    return align


def _sentence_dense(
    passages: Sequence[ScoredChunk], sent_lists: list[list[tuple[int, int]]]
) -> list[list[float]]:
    """Each sentence's e5 similarity with the question, rescaled to [0, 1] over all the
    candidate sentences (0 where the retriever gave no sentence scores).

    Paraphrased questions share few characters with the sentence that answers them,
    but its embedding is usually the closest of the passage's sentences.
    """
    raw: list[list[float | None]] = []
    for sc, sl in zip(passages, sent_lists, strict=True):
        ss = sc.sentences
        spans = getattr(ss, "spans", None)
        sims = getattr(ss, "sims", None)
        row: list[float | None] = []
        for a, b in sl:
            best = None
            if spans is not None and sims is not None:
                for (x, y), v in zip(spans, sims, strict=True):
                    if x < b and y > a:
                        best = float(v) if best is None else max(best, float(v))
            row.append(best)
        raw.append(row)
    vals = [v for row in raw for v in row if v is not None]
    if len(vals) < 2:
        return [[0.0] * len(row) for row in raw]
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-6:
        return [[0.0] * len(row) for row in raw]
    return [[0.0 if v is None else (v - lo) / (hi - lo) for v in row] for row in raw]


def extract_answer(
    question: str,
    passages: Sequence[ScoredChunk],
    *,
    max_chars: int = 120,
    top_k: int = 5,
    weights: Sequence[float] = WEIGHTS,
) -> Extraction | None:
    """The best short verbatim answer to ``question`` from the top ``passages``, or None.

    Every sentence is scored by how much of the question it repeats (content terms, and
    character-level alignment with the question's wording), by the span standing where the
    question has its wh-phrase, by a typed span of the wanted kind and by the passage's
    retrieval rank. Short types (figures, dates, names, places) return the clause(s) with
    the span; the others return the full sentence (both within ``max_chars``).

    ``confidence`` in [0, 1]: how much of the question is found around the answer and
    whether the answer slot was found; unrelated passages get low values.
    """
    passages = list(passages)[:top_k]
    if not passages or not question.strip():
        return None
    qtype = classify_question(question)
    short = qtype.value in _SHORT_TYPES
    terms = _terms(question)
    shape = _qshape(question)
    idf = _idf_weights(terms, passages)
    total_w = sum(idf.values()) or 1.0
    raw_total = sum(t.weight for t in terms) or 1.0
    qterms = [t.text for t in terms if t.pattern is None and len(t.text) >= 2]
    sub = _entity_subkind(question) if qtype is QType.ENTITY else ""
    unit = _unit_hint(question) if qtype is QType.NUMBER else None
    pweights = _passage_weights(passages)
    typed = qtype in _DETECTORS and not (qtype is QType.ENTITY and not sub)

    # character alignment of every sentence; characters of the question found in most
    # sentences (the shared topic) count less than those that single out the statement
    sent_lists = [_split_sentences(sc.chunk.text) for sc in passages]
    runs_by = [
        [_align_runs(shape, sc.chunk.text[a:b]) for a, b in sl]
        for sc, sl in zip(passages, sent_lists, strict=True)
    ]
    n_sent = sum(len(x) for x in sent_lists)
    cw = [1.0] * shape.total
    if n_sent >= 3:
        df = [0] * shape.total
        for rl in runs_by:
            for runs in rl:
                for i, m in runs:
                    for k in range(i, i + m):
                        df[k] += 1
        cw = [1.0 - 0.7 * d / n_sent for d in df]
    cw_total = sum(cw)
    aligned = [[_align_weights(r, cw) for r in rl] for rl in runs_by]
    pmax = [
        [max(col) for col in zip(*al, strict=True)] if al else [0.0] * shape.total for al in aligned
    ]

    dense_rel = _sentence_dense(passages, sent_lists)
    align_by = [
        [
            _sentence_align(aligned[pidx][si], pmax[pidx], cw_total, shape.topic, sc.chunk.text, ss, se)
            for si, (ss, se) in enumerate(sent_lists[pidx])
        ]
        for pidx, sc in enumerate(passages)
    ]
    align_max = max((a for row in align_by for a in row), default=0.0)
    lcs_by = [[max((m for _, m in runs), default=0) for runs in rl] for rl in runs_by]

    best: _Cand | None = None
    best_key = (-1, -1)
    sent_best: dict[tuple[int, int], float] = {}  # best window score per sentence
    for pidx, sc in enumerate(passages):
        text = sc.chunk.text
        if not text.strip():
            continue
        pw = pweights[pidx]
        title = sc.chunk.title or ""
        title_m = {t.text: _term_match(t, title) for t in terms}
        passage_m = {t.text: _term_match(t, text) for t in terms}
        lhits = _anchor_hits(shape.left, text, True)
        rhits = _anchor_hits(shape.right, text, False)
        sentences = sent_lists[pidx]
        cache: dict[int, tuple[list[Span], set[tuple[int, int]], list[tuple[int, int, str]]]] = {}

        def sent_spans(
            si: int, text=text, sentences=sentences, lhits=lhits, rhits=rhits, cache=cache
        ):
            """Typed spans (and the wh-slot span) of sentence ``si``, the spans that
            repeat the question's subject, and the question terms' occurrences."""
            if si in cache:
                return cache[si]
            ss, se = sentences[si]
            sent = text[ss:se]
            wh = _wh_span(text, ss, se, lhits, rhits)
            spans: list[Span] = []
            subj: set[tuple[int, int]] = set()
            if typed:
                for sp in find_spans(sent, qtype):
                    g = sent[sp.start : sp.end]
                    if _is_in_question(g, question):
                        continue
                    strength = sp.strength
                    if wh is not None and ss + sp.start < wh[1] and ss + sp.end > wh[0]:
                        strength += 0.4 * wh[2]
                    # (a full name asked for contains the short name the question uses)
                    if qtype is QType.ENTITY and sub != "name" and _subject_penalised(g, qterms):
                        subj.add((ss + sp.start, ss + sp.end))
                    spans.append(Span(ss + sp.start, ss + sp.end, sp.kind, strength, sp.sub))
            if wh is not None:
                if qtype in (QType.NUMBER, QType.DATE):
                    strength = 0.1 + 0.3 * wh[2]
                else:
                    strength = _WH_BASE + _WH_GAIN * wh[2]
                if short and _subject_penalised(text[wh[0] : wh[1]], qterms):
                    strength *= 0.6
                spans.append(Span(wh[0], wh[1], qtype, strength, "wh"))
            occ = [
                (ss + p, len(t.text), t.text)
                for t in terms
                if t.pattern is None and len(t.text) >= 2
                for p in _term_positions(t.text, sent)
            ]
            cache[si] = (spans, subj, occ)
            return cache[si]

        for si, (ss, se) in enumerate(sentences):
            sent = text[ss:se]
            sent_m = {t.text: _term_match(t, sent) for t in terms}
            # neighbourhood: the sentences around it (context the clause relies on)
            ns = sentences[max(0, si - 1)][0]
            ne = sentences[min(len(sentences) - 1, si + 1)][1]
            near_m = {t.text: _term_match(t, text[ns:ne]) for t in terms}
            align = align_by[pidx][si]
            spans, subj, occ = sent_spans(si)
            if not short and se - ss <= max_chars + 1:
                windows = [_trim(text, ss, se)]
                if qtype in _PAIR_TYPES:
                    # the cause is often told in the sentence before or after the one that
                    # restates the question
                    for sj in (si - 1, si + 1):
                        if 0 <= sj < len(sentences):
                            cs, ce = _trim(
                                text, min(ss, sentences[sj][0]), max(se, sentences[sj][1])
                            )
                            if ce - cs <= max_chars:
                                windows.append((cs, ce))
                                more = sent_spans(sj)
                                spans = spans + more[0]
                                subj = subj | more[1]
                                occ = occ + more[2]
            else:
                windows = _windows(text, _split_clauses(text, ss, se), max_chars, spans)
            for ws, we in windows:
                wtext = text[ws:we]
                cov_w = 0.0
                cov_ctx = 0.0
                inner = ss <= ws and we <= se
                for t in terms:
                    # a window inside the sentence holds nothing of a term the sentence lacks
                    local = 0.0 if inner and not sent_m[t.text] else _term_match(t, wtext)
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
                inside = [sp for sp in spans if ws <= sp.start and sp.end <= we]
                if qtype in (QType.NUMBER, QType.DATE) and any(sp.sub != "wh" for sp in inside):
                    # a figure or date question is answered by the figure or date itself
                    inside = [sp for sp in inside if sp.sub != "wh"]
                for sp in inside:
                    if sp.sub == "wh":
                        fit = sp.strength
                    else:
                        fit = _span_fit(sp, qtype, question, text, sub, unit)
                        if (sp.start, sp.end) in subj:
                            fit *= 0.45
                    prox = 0.0
                    occ_sp = win_occ
                    if (sp.start, sp.end) in subj:
                        # the question's words inside the span do not point at it
                        occ_sp = [o for o in win_occ if o[0] + o[1] <= sp.start or o[0] >= sp.end]
                    if occ_sp:
                        d = min(_distance(text, sp.start, sp.end, p, n) for p, n, _ in occ_sp)
                        prox = 1.0 / (1.0 + d / 8.0)
                    if fit + 0.5 * prox > best_fit + 0.5 * best_prox:
                        best_span, best_fit, best_prox = sp, fit, prox
                length = we - ws
                # windows that are little more than the span cannot stand alone
                rest_len = length - ((best_span.end - best_span.start) if best_span else 0)
                wh_q = max((sp.strength for sp in inside if sp.sub == "wh"), default=0.0)
                feats = (
                    pw * coverage,
                    pw * align,
                    pw * best_fit,
                    pw * best_prox,
                    pw * dense_rel[pidx][si],
                    length / 120.0 if short else 0.0,
                    0.0 if short else length / 120.0,
                    1.0 if rest_len < 5 else 0.0,
                    1.0 if typed and best_span is None and qtype in (QType.ENTITY, QType.LOCATION) else 0.0,
                    1.0 if typed and best_span is None and qtype not in (QType.ENTITY, QType.LOCATION) else 0.0,
                    1.0 if qtype in (QType.NUMBER, QType.DATE) and best_span is not None and best_span.sub == "wh" else 0.0,
                    1.0 if si == 0 else 0.0,
                    0.0 if inner or qtype is QType.REASON else 1.0,
                    pidx / 4.0,
                    1.0 if dense_rel[pidx][si] >= 1.0 else 0.0,
                    1.0 if align_max > 0 and align >= align_max - 1e-9 else 0.0,
                    wh_q,
                    min(lcs_by[pidx][si], 10) / 10.0,
                )
                score = sum(w * f for w, f in zip(weights, feats, strict=True))
                key = (pidx, si)
                if score > sent_best.get(key, -1e9):
                    sent_best[key] = score
                if best is None or score > best.score + 1e-9:
                    best = _Cand(score, pidx, ws, we, best_span, ctx_cov, best_prox, align)
                    best_key = key
    if best is None:
        return None
    text = passages[best.pidx].chunk.text
    best.start, end = _final_window(text, best.start, best.end, best.span, short, max_chars)
    a_text = text[best.start : end]
    hl = None
    if best.span is not None:
        hl = (best.span.start - best.start, best.span.end - best.start)
    has_span = 0.0
    if best.span is not None:
        has_span = 0.6 if best.span.sub == "wh" else 1.0
    elif not typed:
        has_span = 0.4
    fit = max(min(1.0, best.coverage), best.align)
    # how clearly the chosen sentence beats the runner-up sentence
    runner = max((v for k, v in sent_best.items() if k != best_key), default=best.score - 1.0)
    margin = min(1.0, max(0.0, best.score - runner) / _C_MSCALE)
    conf = _C0 + _C_FIT * fit + _C_SPAN * has_span + _C_PROX * best.prox + _C_MARGIN * margin
    # a question whose terms barely appear is probably not answered here at all
    if best.coverage < 0.3:
        conf *= 0.6
    if qtype in (QType.NUMBER, QType.DATE):
        preds = _predicate_terms(question)
        sents = sent_lists[best.pidx]
        si = next((i for i, (a, b) in enumerate(sents) if a <= best.start < b), 0)
        near = text[sents[max(0, si - 1)][0] : sents[si][1]] if sents else text
        if preds and not any(_says(p, near) for p in preds):
            conf *= _C_NO_PREDICATE
    conf = max(0.0, min(1.0, conf))
    return Extraction(a_text, hl, best.pidx, qtype, round(conf, 4))
