"""Question typing: what kind of answer a question wants (多少 → a figure, 何时 → a date, …).

Used by the heuristic extractor to pick typed spans, and to label every answer.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = ["DESC_NOUN", "DESC_Q", "QType", "classify_question", "entity_subkind", "unit_hint"]


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
DESC_NOUN = (
    r"(?:特点|特色|特征|特性|用途|作用|功能|功用|背景|意义|重要性|影响|区别|差别|差异|不同之处|贡献|成就"
    r"|经历|经过|过程|记载|描述|评价|主张|寓意|象征|含义|涵义|目的|职责|形状|外观|外形|样子|结构|性质|状态"
    r"|规定|症状|习性|风格|理念|思想|观点|看法|态度|反应|后果|好处|坏处|优势|优点|缺点|弊端|方式|方法|办法"
    r"|关系|定义|事迹|遭遇|情形|状况|变化|做法|措施|工作)"
)
DESC_Q = re.compile(
    rf"{DESC_NOUN}(?:是|有|为|在于|主要是|主要有|主要为)?(?:什么|啥|哪些|怎样|如何|怎么样)"
    rf"|(?:什么|啥|哪些|怎样的|怎么样的|何种|什么样的?)(?:主要)?{DESC_NOUN}"
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
    if DESC_Q.search(q):
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


def entity_subkind(q: str) -> str:
    """The kind of name an entity question wants ("name", "person", "product", "org") or ""."""
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


def unit_hint(q: str) -> str | None:
    """The unit a figure question asks in ("多少辆" → "辆", "多少钱" → "元"), if any."""
    m = _UNIT_HINT_Q.search(q)
    if not m:
        return None
    u = m.group(1)
    if u in {"钱", "块"}:
        return "元"
    if re.fullmatch(r"[\u4e00-\u9fff%]+", u) is None:
        return None
    return u
