"""The Telegram front end, run for real (python-telegram-bot) against a fake Bot API server."""

from __future__ import annotations

import asyncio
import html
import http.client
import json
import logging
import re
import signal
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from api_helpers import assert_all_is_exact
from fake_telegram import BOT_USERNAME, FakeTelegram
from pydantic import SecretStr
from telegram_helpers import (
    FAST,
    TOKEN,
    FakeService,
    bot_for,
    check_html,
    check_sent,
    make_settings,
    run,
    running,
    spawn_bot,
    src,
)

from qa_bot.telegram import (
    BotConfigError,
    SecretRedactingFilter,
    build_application,
    run_bot,
    validate_token,
)
from qa_bot.telegram.handlers import AnswerStore
from qa_bot.telegram.ratelimit import SlidingWindowRateLimiter
from qa_bot.telegram.render import format_date, render_answer, split_html, tg_len
from qa_bot.telegram.texts import (
    TEXT_ABSTAIN,
    TEXT_ERROR,
    TEXT_EXPIRED,
    TEXT_NON_TEXT,
    TEXT_NOT_ADMIN,
    TEXT_REFUSED_CHAT,
    TEXT_TOO_LONG,
    TEXT_UNKNOWN_COMMAND,
)

pytestmark = pytest.mark.timeout(60)



def test_split_html_short_text_is_untouched() -> None:
    assert split_html("<b>hi</b> &amp; bye") == ["<b>hi</b> &amp; bye"]


def test_split_html_prefers_paragraphs_and_rebalances_tags() -> None:
    paragraphs = [f"段落{i} " + "内容&amp;" * 30 for i in range(40)]
    text = '<a href="https://e.com/?a=1&amp;b=2">' + "<b>" + "\n\n".join(paragraphs) + "</b></a>"
    parts = split_html(text, limit=500)
    assert len(parts) > 3
    for part in parts:
        assert tg_len(part) <= 500
        check_html(part)
        assert part.startswith('<a href="https://e.com/?a=1&amp;b=2"><b>段落')
        assert part.endswith("</b></a>")
    visible = [check_html(p) for p in parts]
    assert "\n\n".join(visible) == html.unescape("\n\n".join(paragraphs))


def test_split_html_without_breaks_never_cuts_entities() -> None:
    text = "<i>" + "&lt;x&gt;" * 1000 + "</i>" + "字" * 3000 + "😀" * 500
    parts = split_html(text, limit=300)
    for part in parts:
        assert tg_len(part) <= 300
        check_html(part)
    assert "".join(check_html(p) for p in parts) == html.unescape(re.sub("</?i>", "", text))


def test_render_answer_escapes_everything_and_bolds_highlight() -> None:
    answer = FakeService().ask("标签")
    text = render_answer(answer)
    check_html(text)
    assert "利率 <b>&lt;b&gt;上调&lt;/b&gt;</b> &amp; 下调" in text
    assert '<a href="https://e.com/a?x=1&amp;y=2">A&amp;B &lt;i&gt;公司&lt;/i&gt;</a>' in text
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "无链接 &lt;标题&gt;（2021-12-02）" in text  # url None → plain title
    assert "（2021-12-01）" in text
    assert "&lt;b&gt;利率&lt;/b&gt; &amp; 汇率?" in text


def test_render_abstention_lists_nearest_articles_once() -> None:
    text = render_answer(FakeService().ask("不知道"))
    assert text.startswith(TEXT_ABSTAIN)
    assert text.count("文章3") == 1 and "文章4" in text and "文章5" in text
    assert "文章6" not in text


def test_format_date() -> None:
    assert format_date("2021-12-28T19:27:59+08:00") == "2021-12-28"
    assert format_date("2021-12-28") == "2021-12-28"
    assert format_date(None) is None and format_date("昨天") is None


@pytest.mark.parametrize(
    ("token", "needle"),
    [
        (None, "not set"),
        ("", "not set"),
        ("12345:short", "malformed"),
        ("abc:" + "x" * 35, "malformed"),
        (TOKEN + " extra", "malformed"),
    ],
)
def test_token_validation(token: str | None, needle: str) -> None:
    settings = make_settings(telegram_bot_token=SecretStr(token) if token is not None else None)
    with pytest.raises(BotConfigError) as info:
        validate_token(settings)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert "short" not in message and "xxxx" not in message  # never echo the value
    assert validate_token(make_settings()) == TOKEN


def test_build_application_rejects_bad_base_url() -> None:
    with pytest.raises(BotConfigError, match="TELEGRAM_API_BASE_URL"):
        build_application(make_settings(telegram_api_base_url="127.0.0.1:8081"), FakeService())


def test_redacting_filter_covers_message_args_and_traceback() -> None:
    flt = SecretRedactingFilter()
    flt.add(TOKEN)
    try:
        raise ValueError(f"bad url https://api.telegram.org/bot{TOKEN}/getMe")
    except ValueError as exc:
        record = logging.LogRecord(
            "httpx",
            logging.INFO,
            __file__,
            1,
            "GET %s",
            (f"/bot{TOKEN}/x",),
            (type(exc), exc, exc.__traceback__),
        )
    assert flt.filter(record)
    rendered = logging.Formatter().format(record)
    assert TOKEN not in rendered
    assert "/bot[REDACTED]/x" in rendered and "bad url" in rendered


def test_rate_limiter_sliding_window() -> None:
    now = [100.0]
    limiter = SlidingWindowRateLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.allow(1) and limiter.allow(1)
    assert not limiter.allow(1)
    assert limiter.allow(2)  # per user
    now[0] += 30
    assert not limiter.allow(1)
    assert 29 <= limiter.retry_after(1) <= 30
    now[0] += 30.5
    assert limiter.allow(1)


def test_answer_store_is_bounded() -> None:
    store = AnswerStore(maxsize=2)
    keys = [store.put(1, [src(i)]) for i in range(1, 4)]
    assert len(store) == 2
    assert store.take(keys[0], 1) is None
    assert store.take(keys[2], 2) is None  # another chat's key: refused, and kept
    assert store.take(keys[2], 1) is not None
    assert store.take(keys[2], 1) is None
    assert all(len("more:" + k) <= 64 for k in keys)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture
def fake() -> FakeTelegram:
    with FakeTelegram(TOKEN) as server:
        yield server


def test_private_question_round_trip(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = FakeService()

    async def scenario() -> None:
        async with running(bot_for(fake, service)):
            fake.enqueue_private_text(101, "央行降准了吗？")
            sent = await fake.wait_for_messages(1)
            await fake.wait_for("sendChatAction")
        text = check_sent(sent[0])
        assert sent[0]["chat_id"] == 101
        assert sent[0]["text"].startswith("<b>关于</b>“央行降准了吗？”的答案。")
        assert (
            '<a href="https://news.example.com/1.html">文章1</a>（2021-12-01）' in sent[0]["text"]
        )
        assert "第1篇文章的段落内容" in text
        assert "reply_markup" not in sent[0]  # only two sources: nothing more to show
        assert sent[0]["link_preview_options"] == {"is_disabled": True}
        assert service.asked == [("央行降准了吗？", "101:101")]
        action = fake.calls("sendChatAction")[0].params
        assert action == {"chat_id": 101, "action": "typing"}
        commands = fake.calls("setMyCommands")
        assert commands and {c["command"] for c in commands[0].params["commands"]} == {
            "ask",
            "latest",
            "stats",
            "help",
        }
        assert fake.calls("deleteWebhook")

    run(scenario)
    http_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/bot[REDACTED]/sendMessage" in line for line in http_lines)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_html_in_answers_and_questions_is_escaped(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.enqueue_private_text(102, "标签 <b>问题</b> & 测试")
            sent = await fake.wait_for_messages(1)
        text = sent[0]["text"]
        check_sent(sent[0])
        assert "<b>上调</b>" not in text and "&lt;b&gt;上调&lt;/b&gt;" in text
        assert "&amp; 下调" in text and "x=1&amp;y=2" in text
        assert "<script>" not in text

    run(scenario)


def test_long_answer_is_split_with_balanced_tags(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.enqueue_private_text(103, "长 答案")
            await fake.wait_for_messages(3)
            await fake.settle(0.2)
        sent = fake.sent(103)
        assert len(sent) >= 3
        visible = [check_sent(p) for p in sent]
        assert visible[0].startswith("第0段")
        assert "第59段" in "".join(visible)
        assert "来源：" in visible[-1]
        # the highlight spans the whole answer, so every part that carries answer text is bold
        assert all(p["text"].startswith("<b>第") for p in sent[1:])

    run(scenario)


def test_more_sources_button_and_callback(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.enqueue_private_text(104, "多 来源的问题")
            await fake.wait_for_messages(1)
            call = fake.calls("sendMessage")[0]
            button = call.params["reply_markup"]["inline_keyboard"][0][0]
            assert button["text"] == "更多来源"
            assert button["callback_data"].startswith("more:")
            assert "文章3" in call.params["text"] and "文章4" not in call.params["text"]
            query_id = fake.enqueue_callback_query(
                call.result, button["callback_data"], user_id=104
            )
            await fake.wait_for_messages(2)
            await fake.wait_for("editMessageReplyMarkup")
            # the same (now used) button again, and a made-up one: both expired
            again = fake.enqueue_callback_query(call.result, button["callback_data"], user_id=104)
            bogus = fake.enqueue_callback_query(call.result, "more:nope", user_id=104)
            answers = await fake.wait_for("answerCallbackQuery", 3)
        by_id = {c.params["callback_query_id"]: c.params for c in answers}
        assert by_id[query_id].get("text") is None
        assert by_id[again]["text"] == TEXT_EXPIRED and by_id[bogus]["text"] == TEXT_EXPIRED
        more = fake.sent(104)[1]
        check_sent(more)
        assert more["text"].startswith("<b>更多来源：</b>")
        assert all(f"文章{i}" in more["text"] for i in range(4, 8))
        assert "文章3" not in more["text"]
        assert more["reply_parameters"]["message_id"] == call.result["message_id"]
        edit = fake.calls("editMessageReplyMarkup")[0].params
        assert edit["message_id"] == call.result["message_id"] and edit["chat_id"] == 104
        assert len(fake.sent(104)) == 2

    run(scenario)


def test_abstention_says_so_and_lists_nearest(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.enqueue_private_text(105, "我不知道的事")
            sent = await fake.wait_for_messages(1)
        check_sent(sent[0])
        assert sent[0]["text"].startswith(TEXT_ABSTAIN)
        assert "文章3" in sent[0]["text"] and "reply_markup" not in sent[0]

    run(scenario)


def test_non_text_and_invalid_input_get_polite_replies(fake: FakeTelegram) -> None:
    service = FakeService()

    async def scenario() -> None:
        async with running(bot_for(fake, service)):
            fake.enqueue_sticker(201)
            fake.enqueue_photo(202)
            fake.enqueue_voice(203)
            fake.enqueue_private_text(204, "/ask")
            fake.enqueue_private_text(205, "问" * 2001)
            fake.enqueue_private_text(206, "/frobnicate now")
            await fake.wait_for_messages(6)
            await fake.settle(0.2)
        replies = {p["chat_id"]: p["text"] for p in fake.sent()}
        assert replies[201] == replies[202] == replies[203] == html.escape(TEXT_NON_TEXT)
        assert "/ask" in replies[204] and "问题" in replies[204]
        assert replies[205] == html.escape(TEXT_TOO_LONG.format(length=2001, limit=400))
        assert replies[206] == html.escape(TEXT_UNKNOWN_COMMAND)
        assert len(fake.sent()) == 6
        assert service.asked == []

    run(scenario)


def test_group_only_answers_when_addressed(fake: FakeTelegram) -> None:
    service = FakeService()
    group = -1001234

    async def scenario() -> None:
        async with running(bot_for(fake, service)):
            fake.enqueue_group_text(group, "大家好，今天股市怎么样", user_id=7)
            fake.enqueue_sticker(group, user_id=7)
            fake.enqueue_group_text(group, "/ask@other_bot 别的机器人", user_id=7)
            fake.enqueue_group_text(group, "/unknown", user_id=7)
            fake.enqueue_group_text(group, "/ask 甲 问题", user_id=7)
            fake.enqueue_group_text(group, f"/ask@{BOT_USERNAME} 乙 问题", user_id=8)
            fake.enqueue_group_text(group, "丙 问题", user_id=7, mention=True)
            fake.enqueue_group_text(group, f"请问 @{BOT_USERNAME.upper()} 丁 问题", user_id=9)
            reply_msg = fake.enqueue_group_text(group, "戊 问题", user_id=7, reply_to_bot=True)
            fake.enqueue_group_text(group, "", user_id=7, mention=True)
            fake.enqueue_photo(group, user_id=7, caption=f"@{BOT_USERNAME} 看看这张图")
            fake.enqueue_photo(group, user_id=7, caption="没提到机器人的图")
            await fake.wait_for_messages(7)
            await fake.settle(0.4)
        assert sorted(service.questions) == sorted(
            ["甲 问题", "乙 问题", "丙 问题", "请问 丁 问题", "戊 问题"]
        )
        sent = fake.sent(group)
        assert len(sent) == 7  # five answers, "what is your question?", "text only please"
        assert sum(p["text"] == html.escape(TEXT_NON_TEXT) for p in sent) == 1
        for params in sent:
            check_sent(params)
            assert params["reply_parameters"]["message_id"] >= 10_000  # quotes the asker
        reply_answer = [p for p in sent if "戊" in p["text"]][0]
        assert reply_answer["reply_parameters"]["message_id"] == reply_msg["message_id"]
        assert "-1001234:7" in {c for _, c in service.asked} and "-1001234:8" in {
            c for _, c in service.asked
        }

    run(scenario)


def test_allow_list_refuses_other_chats(fake: FakeTelegram) -> None:
    service = FakeService()

    async def scenario() -> None:
        app = bot_for(fake, service, allowed_chats="301,-100500", admins="999")
        async with running(app):
            fake.enqueue_private_text(301, "允许的问题")
            fake.enqueue_private_text(302, "不允许的问题")
            fake.enqueue_private_text(302, "/stats")
            fake.enqueue_group_text(-100600, "群里闲聊", user_id=5)
            fake.enqueue_group_text(-100600, "/ask 群里的问题", user_id=5)
            fake.enqueue_private_text(999, "管理员私聊问题")
            await fake.wait_for_messages(5)
            await fake.settle(0.3)
        assert sorted(service.questions) == ["允许的问题", "管理员私聊问题"]
        refusal = html.escape(TEXT_REFUSED_CHAT)
        assert [p["text"] for p in fake.sent(302)] == [refusal, refusal]
        assert [p["text"] for p in fake.sent(-100600)] == [refusal]
        assert len(fake.sent()) == 5

    run(scenario)


def test_commands_help_latest_stats(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService(), admins="42")):
            fake.enqueue_private_text(401, "/start")
            await fake.wait_for_messages(1, chat_id=401)
            fake.enqueue_private_text(401, "/latest")
            await fake.wait_for_messages(2, chat_id=401)
            fake.enqueue_private_text(401, "/stats")
            await fake.wait_for_messages(3, chat_id=401)
            fake.enqueue_private_text(42, "/help")
            await fake.wait_for_messages(1, chat_id=42)
        help_text, latest, stats = (p["text"] for p in fake.sent(401))
        for params in fake.sent():
            check_sent(params)
        assert "/ask" in help_text and "央行最近一次降准是什么时候？" in help_text
        assert f"@{BOT_USERNAME}" in help_text and "/reindex" not in help_text
        assert "/reindex" in fake.sent(42)[0]["text"]
        assert (
            '<a href="https://e.com/n?a=1&amp;b=2">最新 &lt;b&gt;快讯&lt;/b&gt; &amp; 评论</a>'
            "（2022-01-03）"
        ) in latest
        assert "2. 无链接文章" in latest
        assert "1234" in stats and "56789" in stats and "2022-01-03" in stats
        admin_scoped = [c for c in fake.calls("setMyCommands") if "scope" in c.params]
        assert admin_scoped[0].params["scope"] == {"type": "chat", "chat_id": 42}
        assert "reindex" in {c["command"] for c in admin_scoped[0].params["commands"]}

    run(scenario)


def test_reindex_is_admin_only(fake: FakeTelegram) -> None:
    service = FakeService()

    async def scenario() -> None:
        async with running(bot_for(fake, service, admins="42")):
            fake.enqueue_private_text(43, "/reindex")
            await fake.wait_for_messages(1, chat_id=43)
            assert service.reindexed == 0
            fake.enqueue_private_text(42, "/reindex")
            await fake.wait_for_messages(2, chat_id=42)
        assert fake.sent(43)[0]["text"] == html.escape(TEXT_NOT_ADMIN)
        start, report = (p["text"] for p in fake.sent(42))
        assert "正在更新索引" in start
        assert "新增 2 篇，修改 1 篇，删除 0 篇，未变 1200 篇" in report
        assert "新嵌入 40 个片段" in report and "3.2 秒" in report
        assert service.reindexed == 1

    run(scenario)


def test_rate_limit_per_user_with_injected_clock(fake: FakeTelegram) -> None:
    service = FakeService()
    now = [1000.0]

    async def scenario() -> None:
        app = bot_for(fake, service, rate_limit_per_minute=2, clock=lambda: now[0])
        async with running(app):
            for i in range(3):
                fake.enqueue_private_text(501, f"问题{i}")
            await fake.wait_for_messages(3)
            fake.enqueue_private_text(502, "别人的问题")  # other users are unaffected
            await fake.wait_for_messages(4)
            now[0] += 61
            fake.enqueue_private_text(501, "一分钟后")
            await fake.wait_for_messages(5)
        texts = [p["text"] for p in fake.sent(501)]
        limited = [t for t in texts if "太频繁" in t]
        assert len(limited) == 1 and "每分钟最多 2 个问题" in limited[0]
        assert len(service.questions) == 4 and "一分钟后" in service.questions

    run(scenario)


def test_service_error_goes_to_error_handler(
    fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.enqueue_private_text(601, "爆炸吧")
            await fake.wait_for_messages(1)
            fake.enqueue_private_text(601, "之后还能回答吗")
            await fake.wait_for_messages(2)
        first, second = fake.sent(601)
        assert first["text"] == TEXT_ERROR
        assert "之后还能回答吗" in second["text"]

    run(scenario)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("chat 601" in r.getMessage() for r in errors)
    assert "index exploded" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_flood_control_retries_after_429(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.fail_next("sendMessage", retry_after=1)
            fake.enqueue_private_text(701, "限流后的问题")
            sent = await fake.wait_for_messages(1, timeout=10)
        assert "限流后的问题" in sent[0]["text"]
        assert len(fake.calls("sendMessage")) == 2  # the 429 and the successful retry

    run(scenario)


def test_slow_answers_run_concurrently_and_loop_stays_responsive(fake: FakeTelegram) -> None:
    gate = threading.Event()
    service = FakeService(gate=gate)

    async def scenario() -> None:
        async with running(bot_for(fake, service)):
            for chat in (801, 802, 803):
                fake.enqueue_private_text(chat, "慢 问题")
            deadline = time.monotonic() + 10
            while len(service.asked) < 3:  # all three are inside ask() at the same time
                assert time.monotonic() < deadline, service.asked
                await asyncio.sleep(0.01)
            fake.enqueue_private_text(804, "/help")  # served while the asks are blocked
            sent = await fake.wait_for_messages(1)
            assert sent[0]["chat_id"] == 804
            gate.set()
            await fake.wait_for_messages(4)

    try:
        run(scenario)
    finally:
        gate.set()


def test_burst_of_200_questions_from_20_chats(fake: FakeTelegram) -> None:
    service = FakeService()

    async def scenario() -> None:
        # The real flood limiter, just with a higher overall rate to keep the test short.
        app = bot_for(fake, service, tuning=replace(FAST, overall_max_rate=300))
        async with running(app):
            for i in range(200):
                fake.enqueue_private_text(1000 + i % 20, f"问题 #{i}")
            await fake.wait_for_messages(200, timeout=30)
            await fake.settle(0.2)
        sent = fake.sent()
        assert len(sent) == 200
        answered = {re.search(r"问题 #(\d+)", p["text"]).group(1) for p in sent}
        assert answered == {str(i) for i in range(200)}
        assert all(len(fake.sent(1000 + c)) == 10 for c in range(20))

    run(scenario, timeout=50)


# ----------------------------------------------------------------------------- run_bot

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_bot_polls_and_stops_on_signal(fake: FakeTelegram, sig: signal.Signals) -> None:
    proc = spawn_bot(fake.base_url)
    try:
        fake.wait_for_sync("setMyCommands", timeout=20)
        fake.enqueue_private_text(901, "子进程里的问题")
        fake.wait_for_sync("sendMessage", timeout=10)
        started = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "STOPPED cleanly; live workers: 0" in out
    assert "子进程里的问题" in fake.sent(901)[0]["text"]
    assert TOKEN not in out + err
    assert "[REDACTED]" in err  # httpx request lines were logged, without the token


def test_run_bot_reports_rejected_token(fake: FakeTelegram) -> None:
    fake.reject_token = True
    proc = spawn_bot(fake.base_url)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "CONFIG ERROR: Telegram rejected TELEGRAM_BOT_TOKEN" in out
    assert TOKEN not in out + err


def test_run_bot_rejects_missing_token_before_network() -> None:
    with pytest.raises(BotConfigError, match="not set"):
        run_bot(make_settings(telegram_bot_token=None), FakeService())
    with pytest.raises(BotConfigError, match="WEBHOOK_SECRET"):
        run_bot(
            make_settings(
                webhook_url="https://bot.example.com/hook", webhook_secret=SecretStr("bad secret!")
            ),
            FakeService(),
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post_update(port: int, path: str, update: dict, secret: str | None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    try:
        conn.request("POST", path, body=json.dumps(update).encode(), headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_run_bot_webhook_mode_checks_secret_token(fake: FakeTelegram) -> None:
    port = _free_port()
    proc = spawn_bot(fake.base_url, "https://bot.example.com/tg/hook", str(port))
    try:
        hook = fake.wait_for_sync("setWebhook", timeout=20)[0].params
        assert hook["url"] == "https://bot.example.com/tg/hook"
        secret = hook["secret_token"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret)
        message = fake.make_message(902, text="网络钩子的问题", chat_type="private")
        deadline = time.monotonic() + 10
        while True:  # the webhook server starts right after setWebhook
            try:
                status = _post_update(
                    port, "/tg/hook", {"update_id": 1, "message": message}, "wrong-secret"
                )
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert status == 403
        assert _post_update(port, "/tg/hook", {"update_id": 2, "message": message}, secret) == 200
        fake.wait_for_sync("sendMessage", timeout=10)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "STOPPED cleanly" in out
    sent = fake.sent(902)
    assert len(sent) == 1 and "网络钩子的问题" in sent[0]["text"]
    assert TOKEN not in out + err and secret not in out + err


def test_real_service_hot_reload_after_update(fake: FakeTelegram, tmp_path: Path) -> None:
    """The bot over the real QAService (deterministic embedder) answers from a newly
    published index without a restart, and /stats shows the new counts."""
    from qa_bot.embedding import HashEmbedder
    from qa_bot.service import QAService

    posts = tmp_path / "corpus" / "_posts"
    posts.mkdir(parents=True)
    post = (
        '---\ntitle: "{t}"\ndate: 2022-01-0{d} 09:00:00 +0800\n---\n\n{b}\n\n'
        "<http://finance.eastmoney.com/news/{d}.html>\n"
    )
    (posts / "2022-01-01-1.md").write_text(
        post.format(t="离岸人民币兑美元升至新高", d=1, b="离岸人民币兑美元升至6.3512，为2018年以来最高水平。"),
        encoding="utf-8",
    )
    settings = make_settings(
        fake, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "idx", cache_dir=tmp_path / "cache",
        reader="off",
    )
    emb = HashEmbedder(dim=256)
    service = QAService(settings, embedder=emb, query_encoder=emb)
    service.update(full=True)

    async def scenario() -> None:
        async with running(build_application(settings, service)):
            fake.enqueue_private_text(7, "巨化股份新装置年产能多少")
            first = (await fake.wait_for_messages(1, chat_id=7))[0]["text"]
            assert "8000吨" not in first
            # another process (CLI, cron, watcher) publishes a new generation
            (posts / "2022-01-02-2.md").write_text(
                post.format(t="巨化股份新冷媒装置", d=2, b="巨化股份称，公司新型制冷剂装置年产能合计8000吨/年，预计年内投产。"),
                encoding="utf-8",
            )
            updater = QAService(settings, embedder=emb, query_encoder=emb)
            await asyncio.to_thread(updater.update)
            fake.enqueue_private_text(7, "巨化股份新装置年产能多少")
            second = (await fake.wait_for_messages(2, chat_id=7))[1]["text"]
            assert "<b>8000吨/年</b>" in second or "8000吨/年" in second
            fake.enqueue_private_text(7, "/stats")
            stats = (await fake.wait_for_messages(3, chat_id=7))[2]["text"]
            assert "文章：2 篇" in stats

    run(scenario, timeout=60)


# ----------------------------------------------------------------------------- package surface


def test_public_api_is_exactly_all() -> None:
    import qa_bot.telegram as package

    assert_all_is_exact(package)


class TypedFakeService(FakeService):
    """A service whose results leave most fields empty: they render as "—", not "None"."""

    def latest(self, n: int = 5) -> list:
        from qa_bot.telegram import LatestArticle

        return [LatestArticle(path="_posts/t.md", title="类型化文章", url="https://e.com/t")]

    def stats(self):  # type: ignore[no-untyped-def]
        from qa_bot.telegram import IndexStats

        return IndexStats(articles=3, chunks=9, generation="g42")

    def reindex(self):  # type: ignore[no-untyped-def]
        from qa_bot.telegram import ReindexReport

        return ReindexReport(added=1, total_chunks=9, seconds=None)


def test_typed_service_end_to_end(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, TypedFakeService(), admins="42")):
            for n, command in enumerate(("/latest", "/stats", "/reindex"), 1):
                fake.enqueue_private_text(42, command)
                # /reindex answers twice: "updating…" and the report
                await fake.wait_for_messages(n + (n == 3), chat_id=42)
        latest, stats, _, report = (p["text"] for p in fake.sent(42))
        assert '<a href="https://e.com/t">类型化文章</a>' in latest
        assert "文章：3 篇" in stats and "索引版本：g42" in stats and "最后更新：—" in stats
        assert report.startswith("<b>索引已更新</b>\n新增 1 篇") and "用时" not in report

    run(scenario)
