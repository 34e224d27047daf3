"""The reader's tokenizer, cut down to the scripts a Chinese news archive is written in.

The base tokenizer (XLM-R's 250,002-piece Unigram) costs 283 MB of RSS once loaded,
mostly its trie: more than the int8 model itself (139 MB), and what put a serving bot
with the reader past 1.5 GB at 100k chunks (bench/). Kept are the pieces made only of
Han, kana, Latin, Greek, digits, punctuation and symbols (138,033 pieces, ~125 MB).

Segmentation is unchanged for any text in those scripts: every piece matching part of
such a text is made of its characters, so it was kept, and Unigram's best path over the
same pieces is the same path. A character of another script (Arabic, Cyrillic, Thai, …)
becomes ``<unk>``, which a reader of Chinese news can afford. The pruned pieces keep the
base's order, so ``token_ids[new id]`` is the id the model was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["READER_TOKENIZER", "TOKEN_IDS", "kept_char", "load_tokenizer", "prune_tokenizer"]

READER_TOKENIZER = "tokenizer-reader.json"
TOKEN_IDS = "token-ids.npy"

_KEPT_RANGES = (
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin-1, Latin Extended A/B (pinyin tone marks)
    (0x370, 0x3FF),  # Greek (α, β in finance)
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese names)
    (0x2000, 0x206F),  # general punctuation
    (0x20A0, 0x20CF),  # currency signs
    (0x2100, 0x22FF),  # letterlike, number forms, arrows, maths
    (0x2460, 0x24FF),  # enclosed alphanumerics (①)
    (0x2500, 0x26FF),  # box drawing, blocks (the ▁ word marker), shapes, symbols
    (0x3000, 0x30FF),  # CJK punctuation, kana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half- and full-width forms
)


def kept_char(c: str) -> bool:
    o = ord(c)
    return any(a <= o <= b for a, b in _KEPT_RANGES)


def _special(piece: str) -> bool:
    return piece.startswith("<") and piece.endswith(">")


def prune_tokenizer(src: Path, out_dir: Path) -> int:
    """Write ``out_dir/READER_TOKENIZER`` and ``out_dir/TOKEN_IDS`` from the base
    ``tokenizer.json``; returns the number of pieces kept."""
    spec = json.loads(Path(src).read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{src}: expected a Unigram tokenizer, not {model.get('type')}")
    vocab = model["vocab"]
    keep = [i for i, (piece, _) in enumerate(vocab) if _special(piece) or all(map(kept_char, piece))]
    new_id = {old: new for new, old in enumerate(keep)}
    model["vocab"] = [vocab[i] for i in keep]
    model["unk_id"] = new_id[model["unk_id"]]
    for tok in spec.get("added_tokens", []):
        tok["id"] = new_id[tok["id"]]
    _remap_post_processor(spec.get("post_processor"), new_id)
    out = Path(out_dir)
    (out / READER_TOKENIZER).write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    np.save(out / TOKEN_IDS, np.array(keep, dtype=np.int64))
    return len(keep)


def _remap_post_processor(proc: dict | None, new_id: dict[int, int]) -> None:  # type: ignore[type-arg]
    """The template's special tokens (<s>, </s>) by their pruned ids."""
    if not proc:
        return
    for sub in proc.get("processors", []):
        _remap_post_processor(sub, new_id)
    for special in (proc.get("special_tokens") or {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]


def load_tokenizer(model_dir: Path):  # type: ignore[no-untyped-def]
    """``(tokenizer, token_ids)``: the pruned tokenizer and its id map when the merged
    folder has them, else the base tokenizer and None."""
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    pruned, ids = model_dir / READER_TOKENIZER, model_dir / TOKEN_IDS
    if pruned.is_file() and ids.is_file():
        return Tokenizer.from_file(str(pruned)), np.load(ids)
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")), None
