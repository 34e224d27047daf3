"""Span EM and F1 by the CMRC 2018 official measure (``cmrc2018_evaluate.py``).

Lower-cased; the official punctuation list removed; each Chinese character is a token,
runs of other characters are split into words; F1 is taken over the longest common
*substring* of the two token lists (not the bag-of-tokens overlap SQuAD uses); the best
score over all gold answers counts. The official script splits non-Chinese runs with
nltk's ``word_tokenize``; a regex word split gives the same tokens for the digits, Latin
words and symbols these answers hold, without shipping nltk and its data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["cmrc_em", "cmrc_f1", "mixed_segmentation"]

_PUNCT = frozenset(
    "-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』"
) | {"……"}
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d]+|\d+|[^\w\s]")


def mixed_segmentation(text: str, *, rm_punc: bool = True) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for ch in str(text).lower().strip():
        if rm_punc and ch in _PUNCT:
            continue
        if _CJK.match(ch) or ch in _PUNCT:
            if run:
                out.extend(_WORD.findall("".join(run)))
                run = []
            out.append(ch)
        else:
            run.append(ch)
    if run:
        out.extend(_WORD.findall("".join(run)))
    return out


def _remove_punctuation(text: str) -> str:
    return "".join(ch for ch in str(text).lower().strip() if ch not in _PUNCT)


def _lcs_len(a: Sequence[str], b: Sequence[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def cmrc_f1(golds: Sequence[str], prediction: str | None) -> float:
    """Best F1 (0..1) of ``prediction`` against any gold answer; None (abstained) scores 0."""
    if prediction is None or not golds:
        return 0.0
    pred = mixed_segmentation(prediction)
    best = 0.0
    for gold in golds:
        ref = mixed_segmentation(gold)
        common = _lcs_len(ref, pred)
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def cmrc_em(golds: Sequence[str], prediction: str | None) -> float:
    if prediction is None:
        return 0.0
    pred = _remove_punctuation(prediction)
    return float(any(_remove_punctuation(g) == pred for g in golds))
