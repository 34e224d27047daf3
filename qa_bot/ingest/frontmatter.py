"""The YAML front matter: split off the body, loaded safely under a size budget.

``yaml.safe_load`` builds no arbitrary objects, but it still lets nine aliases of nine
aliases ("billion laughs", 403 bytes) stand for 387 million values, which ``str()``
then expands; and libyaml's composer recurses on nesting. So the event stream is
measured first, with every alias counted at its expanded size, and only a front matter
within budget is loaded.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml

from qa_bot.ingest.limits import IngestLimits, PostError

_FENCE = re.compile(r"^---[ \t]*$")


def split_front_matter(text: str) -> tuple[str, str]:
    lines = text.split("\n")
    i = 0
    # some posts start with a blank line before the opening fence
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or not _FENCE.match(lines[i]):
        raise PostError("no front matter (file must start with a '---' line)")
    for j in range(i + 1, len(lines)):
        if _FENCE.match(lines[j]):
            return "\n".join(lines[i + 1 : j]), "\n".join(lines[j + 1 :])
    raise PostError("no front matter (closing '---' line missing)")


# libyaml's parser when PyYAML was built with it: ten times faster on large corpora
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that leaves timestamps as text.

    PyYAML turns dates into datetimes only when they match its own pattern (not
    "+0800") and raises a bare ValueError on "2021-13-45"; one parser for all dates
    is simpler and never crashes.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _measure(raw: str, limits: IngestLimits) -> None:
    """Refuse a front matter whose aliases expand past the budget, or nested too deep.

    Size: a scalar weighs its length + 1, a collection 1 + its items, an alias what its
    anchor weighs. Linear in the events, and stops at the first excess.
    """
    budget, max_depth = limits.max_front_matter_chars, limits.max_nesting_depth
    anchors: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = [(None, 0)]  # (anchor, weight so far)
    for event in yaml.parse(raw, Loader=_Loader):
        if isinstance(event, _OPEN):
            stack.append((event.anchor, 1))
            if len(stack) - 1 > max_depth:
                raise PostError(
                    f"front matter nested deeper than {max_depth} (limit QA_BOT_MAX_NESTING_DEPTH)"
                )
            continue
        if isinstance(event, _CLOSE):
            anchor, weight = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, weight = event.anchor, len(event.value) + 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:  # undefined, or recursive (its node is still open)
                raise PostError(f"invalid YAML front matter: alias *{event.anchor} is not usable")
            anchor, weight = None, anchors[event.anchor]
        else:
            continue
        if anchor is not None:
            anchors[anchor] = weight
        parent_anchor, parent_weight = stack[-1]
        stack[-1] = (parent_anchor, parent_weight + weight)
        if stack[-1][1] > budget or weight > budget:
            raise PostError(
                f"front matter larger than {budget} characters with its YAML aliases "
                "expanded (limit QA_BOT_MAX_FRONT_MATTER_CHARS)"
            )


def load_front_matter(raw: str, limits: IngestLimits) -> dict[str, Any]:
    try:
        _measure(raw, limits)
        meta = yaml.load(raw, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise PostError(f"invalid YAML front matter: {first[0] if first else exc}") from exc
    if meta is None:
        return {}  # an empty front matter is legal Jekyll
    if not isinstance(meta, dict):
        raise PostError(f"front matter is not a mapping (got {type(meta).__name__})")
    return meta


_DATE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def _tzinfo(tz: str | None) -> dt.tzinfo | None:
    if not tz:
        return None
    if tz == "Z":
        return dt.timezone.utc
    digits = tz[1:].replace(":", "")
    delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt.timezone(-delta if tz[0] == "-" else delta)


def normalize_date(value: Any) -> str | None:
    """ISO 8601, keeping the offset only when the post gave one; None when unusable."""
    if not isinstance(value, str):
        return None  # e.g. YAML reading a bare "+0700" as an octal number
    m = _DATE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    try:
        if hour is None:
            return dt.date(int(year), int(month), int(day)).isoformat()
        stamp = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=_tzinfo(tz),
        )
    except ValueError:
        return None  # 2021-13-45 and friends
    return stamp.isoformat()


def str_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # Jekyll splits a string of categories/tags on whitespace
        return tuple(value.split())
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if v is not None and str(v).strip())
    return (str(value),)
