"""Markdown syntax stripped from one line, in time linear in the line.

The obvious regexes are quadratic on hostile lines: ``(\\*\\*)(.+?)\\1`` rescans the rest
of the line from every ``**`` that has no partner (a 1 MB line of ``**a `` took
minutes), ``\\[[^\\]]*\\]\\([^)]*\\)`` does the same from every ``[``. These scanners give
exactly the regexes' results (tests/test_ingest_properties.py checks them against
the regexes) while finding each partner with one forward-moving search.
"""

from __future__ import annotations

import re

_HTML_LINE = re.compile(r"^\s*<(?:[A-Za-z][\w-]*|/[A-Za-z]|!--)")
# CJK text puts emphasis right against letters (第二段*强调*), so only ASCII
# alphanumerics guard against "3*5*2". Linear as it is: [^*\n] cannot pass the next "*".
_MD_EM = re.compile(r"(?<![A-Za-z0-9*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![A-Za-z0-9*])")


class _NextFind:
    """``text.find(sub, start)`` for non-decreasing ``start``: each search resumes where
    the last one stopped, so all searches together read the text once."""

    def __init__(self, text: str, sub: str) -> None:
        self.text, self.sub = text, sub
        self.found = -2  # nothing searched yet

    def __call__(self, start: int) -> int:
        if self.found == -1 or (self.found != -2 and self.found >= start):
            return self.found
        self.found = self.text.find(self.sub, start)
        return self.found


def _strip_bracketed(line: str, opener: str, keep_label: bool) -> str:
    """``opener[label](target)`` → label (links) or nothing (images), leftmost first,
    like ``re.sub(r"OPENER([^\\]]*)\\]\\([^)]*\\)", ...)``."""
    if opener not in line:
        return line
    close_bracket, close_paren = _NextFind(line, "]"), _NextFind(line, ")")
    out: list[str] = []
    pos, n, w = 0, len(line), len(opener)
    start = line.find(opener)
    while start != -1:
        end_label = close_bracket(start + w)
        if end_label == -1:
            break  # no "]" anywhere further: no later opener can match either
        end = close_paren(end_label + 2) if line.startswith("(", end_label + 1) else -1
        if end != -1:
            out.append(line[pos:start])
            if keep_label:
                out.append(line[start + w : end_label])
            pos = end + 1
            start = line.find(opener, pos)
        else:
            start = line.find(opener, start + 1)
    if not out:
        return line
    out.append(line[pos:n])
    return "".join(out)


def _closers(line: str, delim: str) -> list[int]:
    """Positions where ``delim`` can close emphasis: right after a non-space."""
    return [
        m.start()
        for m in re.finditer(f"(?={re.escape(delim)})", line)
        if m.start() > 0 and not line[m.start() - 1].isspace()
    ]


def _strip_strong(line: str) -> str:
    """``re.sub(r"(\\*\\*|__)(?=\\S)(.+?)(?<=\\S)\\1", r"\\2", line)`` in linear time."""
    if "**" not in line and "__" not in line:
        return line
    closers = {d: _closers(line, d) for d in ("**", "__")}
    cursor = {"**": 0, "__": 0}
    opens = sorted(
        (m.start(), d) for d in ("**", "__") for m in re.finditer(f"(?={re.escape(d)})", line)
    )
    out: list[str] = []
    pos, n = 0, len(line)
    for start, delim in opens:
        if start < pos or start + 2 >= n or line[start + 2].isspace():
            continue
        cands, i = closers[delim], cursor[delim]
        while i < len(cands) and cands[i] < start + 3:  # the text between needs a character
            i += 1
        cursor[delim] = i
        if i == len(cands):
            continue
        end = cands[i]
        out.append(line[pos:start])
        out.append(line[start + 2 : end])
        pos = end + 2
    out.append(line[pos:])
    return "".join(out)


def _heading_text(line: str) -> str | None:
    """``re.match(r"^\\s{0,3}#{1,6}\\s+(.*?)\\s*#*\\s*$", line).group(1)`` in linear time
    (the regex is quadratic in a long run of spaces)."""
    lead = len(line) - len(line.lstrip())
    if lead > 3 or not line.startswith("#", lead):
        return None
    hashes = len(line) - lead - len(line[lead:].lstrip("#"))
    after = lead + hashes
    if hashes > 6 or after >= len(line) or not line[after].isspace():
        return None
    start = len(line) - len(line[after:].lstrip())
    end = len(line.rstrip().rstrip("#").rstrip())
    return line[start : max(start, end)]


def strip_markdown_line(line: str) -> str:
    if _HTML_LINE.match(line):
        return line  # HTML is handled by the parser; don't touch its attributes
    heading = _heading_text(line)
    if heading is not None:
        line = heading
    line = _strip_bracketed(line, "![", keep_label=False)
    line = _strip_bracketed(line, "[", keep_label=True)
    line = _strip_strong(line)
    return _MD_EM.sub(r"\1", line)
