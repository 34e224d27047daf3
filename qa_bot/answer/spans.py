"""Typed spans: figures, dates, names, places, lists, causes and verdicts in a text, found
by regular expressions (and jieba's segmentation for list items); used by the heuristic
extractor."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..lexical import WordCutter, default_tokenizer
from .qtype import QType

__all__ = [
    "MAG",
    "Span",
    "UNIT",
    "cut_words",
    "date_spans",
    "entity_spans",
    "find_spans",
    "has_detector",
    "list_spans",
    "location_spans",
    "number_spans",
    "reason_spans",
    "yesno_spans",
]


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


# --------------------------------------------------------------------------- jieba


def cut_words(text: str, tokenizer: WordCutter | None = None) -> tuple[str, ...]:
    """jieba's words of ``text``, punctuation included: ``tokenizer``'s (the service passes
    its index's, with the corpus's user words), else ``qa_bot.lexical.default_tokenizer``."""
    return (tokenizer if tokenizer is not None else default_tokenizer()).cut(text)


# --------------------------------------------------------------------------- span detectors

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
# magnitude words and units, as regex source: the extractor also uses them to tell a unit
# after a wh-phrase ("多少厘米") from words of the event asked about
MAG = r"(?:万亿|千亿|百亿|十亿|亿|千万|百万|十万|万|千|百)"
UNIT = (
    r"(?:个百分点|百分点|个基点|基点|%|％|‰|(?:美|港|欧|日|韩|加|澳)?元(?:人民币)?|美金|人民币|英镑|卢布|法郎"
    r"|吨|千克|公斤|克|毫克|斤|升|毫升|桶|盎司|辆|台|部|架|艘|套|座|栋|间|张|件|项|条|次|人次|人口|人"
    r"|户|名|位|家|只|个|款|种|所|场|批|股|手|份|倍|成|亩|公顷|平方米|平方公里|平米|公里|千米|米"
    r"|千瓦时|千瓦|兆瓦|吉瓦|瓦|度|GW|MW|kW|GWh|TB|PB|岁|年|个月|周|天|小时|分钟|秒|笔|单|元/股)"
)
_PER = r"(?:/(?:年|月|日|天|吨|桶|股|人|平方米|斤|公斤|千克|盎司|辆|台|小时))?"
_PREFIX = r"(?:大约|约合|约为|约|超过|超|近|逾|达到|高达|多达|达|不到|不足|仅|至少|最多|连续|累计|共计|合计|共)"
_RANGE_SEP = r"\s?(?:-|~|～|—|－|–|至|到)\s?"
_AMOUNT_RE = re.compile(
    rf"(?:{_PREFIX})?{_NUM}(?:{MAG}?{UNIT}?{_RANGE_SEP}{_NUM})?{MAG}?(?:多|余)?{UNIT}?{_PER}"
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
        has_unit = bool(re.search(rf"{MAG}|{UNIT}$|%|‰", g)) or "/" in g
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


def entity_spans(text: str, tokenizer: WordCutter | None = None) -> list[Span]:
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
    for ls in list_spans(text, tokenizer):
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


def _token_suffix_len(s: str, limit: int, tokenizer: WordCutter | None) -> int:
    """Length of the longest run of whole jieba tokens ending ``s`` within ``limit`` chars."""
    n = 0
    for tok in reversed(cut_words(s, tokenizer)):
        if n + len(tok) > limit:
            break
        n += len(tok)
    return n or min(len(s), limit)


def list_spans(text: str, tokenizer: WordCutter | None = None) -> list[Span]:
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
            s += len(head) - _token_suffix_len(head, target + 1, tokenizer)
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


def location_spans(text: str, tokenizer: WordCutter | None = None) -> list[Span]:
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
    for sp in entity_spans(text, tokenizer):
        if sp.sub in {"org", "quote"}:
            spans.append(Span(sp.start, sp.end, QType.LOCATION, 0.4, sp.sub))
    return _strip_overlaps_prefer_strong(spans)


# names, places and lists cut list heads at word boundaries; the others are pure regex
_DETECTORS: dict[QType, Callable[[str, WordCutter | None], list[Span]]] = {
    QType.LOCATION: location_spans,
    QType.NUMBER: lambda text, _: number_spans(text),
    QType.DATE: lambda text, _: date_spans(text),
    QType.ENTITY: entity_spans,
    QType.LIST: list_spans,
    QType.REASON: lambda text, _: reason_spans(text),
    QType.YESNO: lambda text, _: yesno_spans(text),
}


def has_detector(qtype: QType) -> bool:
    """Whether ``find_spans`` knows spans of this kind."""
    return qtype in _DETECTORS


def find_spans(text: str, qtype: QType, tokenizer: WordCutter | None = None) -> list[Span]:
    """Typed spans of ``text`` that could answer a question of type ``qtype``."""
    det = _DETECTORS.get(qtype)
    return det(text, tokenizer) if det else []
