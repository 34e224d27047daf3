"""Larger benchmark corpora, generated from the shared samples.

The base set is the seed article, the 106 finews posts (parsed by ``qa_bot.ingest``) and
the 256 CMRC 2018 trial contexts: 363 posts, ≈ 515 chunks. Replica 0 is the base set
verbatim (so the eval questions have their answers in the corpus); replica ``r ≥ 1``
copies every post with a date shifted by ``r`` days, a new id, the title tagged
``（r）`` and light text variation: every number changed and the sentences of each
paragraph shuffled, so chunk texts (and text hashes) are all distinct.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from qa_bot.chunking import split_sentences
from qa_bot.ingest import load_corpus

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
FINEWS = SHARED / "corpus-sample" / "finews"
SEED = SHARED / "corpus-sample" / "seed"
CMRC = SHARED / "eval" / "cmrc2018_trial.json"
FINEWS_DEV = SHARED / "eval" / "finews_qa_dev.jsonl"

_NUM = re.compile(r"\d+")
_BASE_DATE = datetime(2020, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))


@dataclass(frozen=True)
class BasePost:
    key: str  # stable id of the base post
    title: str
    date: datetime
    url: str | None
    categories: tuple[str, ...]
    paragraphs: tuple[str, ...]


def base_posts() -> list[BasePost]:
    posts: list[BasePost] = []
    for folder, tag in ((SEED, "seed"), (FINEWS, "finews")):
        articles, _ = load_corpus(folder)
        for i, a in enumerate(articles):
            try:
                date = datetime.fromisoformat(a.date) if a.date else _BASE_DATE
            except ValueError:
                date = _BASE_DATE
            if date.tzinfo is None:
                date = date.replace(tzinfo=_BASE_DATE.tzinfo)
            title = a.title or (a.paragraphs[0][:20] if a.paragraphs else "无题")
            posts.append(BasePost(f"{tag}{i:04d}", title, date, a.url, a.categories or (tag,), a.paragraphs))
    data = json.loads(CMRC.read_text(encoding="utf-8"))
    n = 0
    for art in data["data"]:
        for para in art["paragraphs"]:
            paras = tuple(p.strip() for p in para["context"].split("\n") if p.strip())
            title = art.get("title") or paras[0][:20]
            posts.append(BasePost(f"cmrc{n:04d}", title, _BASE_DATE, None, ("cmrc",), paras))
            n += 1
    return posts


def _vary(text: str, rng: random.Random) -> str:
    def num(m: re.Match[str]) -> str:
        s = m.group(0)
        v = int(s) + rng.randint(1, 9)
        return str(v).zfill(len(s)) if s.startswith("0") else str(v)

    sentences = split_sentences(_NUM.sub(num, text))
    if len(sentences) > 1:
        rng.shuffle(sentences)
    return "".join(sentences)


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON strings are valid YAML scalars


def render_post(post: BasePost, replica: int) -> tuple[str, str]:
    """(relative path, file text) of ``post`` in ``replica``."""
    rng = random.Random(f"{post.key}/{replica}")
    date = post.date + timedelta(days=replica)
    if replica:
        title = f"{post.title}（{replica}）"
        paragraphs = [_vary(p, rng) for p in post.paragraphs]
    else:
        title, paragraphs = post.title, list(post.paragraphs)
    name = f"_posts/{date:%Y-%m-%d}-{post.key}r{replica:05d}.md"
    front = [
        "---",
        "layout: post",
        f"title: {_yaml_str(title)}",
        f"date: {date:%Y-%m-%d %H:%M:%S %z}",
        f"categories: {_yaml_str(' '.join(post.categories))}",
    ]
    if post.url:
        front.append(f"url: {_yaml_str(post.url + ('' if not replica else f'&r={replica}'))}")
    front.append("---")
    return name, "\n".join(front) + "\n" + "\n\n".join(paragraphs) + "\n"


def write_corpus(dest: Path, replicas: int, extra_from: int | None = None) -> int:
    """Write replicas ``0..replicas-1`` of the base set under ``dest`` (once); returns post count.

    A ``.complete`` marker records the replica count, so a second run reuses the folder.
    """
    marker = dest / ".complete"
    if marker.exists() and marker.read_text().strip() == str(replicas):
        return sum(1 for _ in (dest / "_posts").glob("*.md"))
    posts = base_posts()
    (dest / "_posts").mkdir(parents=True, exist_ok=True)
    for old in (dest / "_posts").glob("*.md"):
        old.unlink()
    n = 0
    for r in range(replicas):
        for p in posts:
            rel, text = render_post(p, r)
            (dest / rel).write_text(text, encoding="utf-8")
            n += 1
    marker.write_text(str(replicas))
    return n


def questions(n_cmrc: int = 70) -> list[tuple[str, tuple[str, ...]]]:
    """~100 questions: the 30 finews dev questions and one CMRC question per context."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for line in FINEWS_DEV.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out.append((rec["q"], (rec["answer"],) if rec.get("answer") else ()))
    data = json.loads(CMRC.read_text(encoding="utf-8"))
    for art in data["data"]:
        for para in art["paragraphs"]:
            if len(out) >= 30 + n_cmrc:
                return out
            qa = para["qas"][0]
            out.append((qa["question"], tuple(a["text"] for a in qa["answers"] if a["text"])))
    return out
