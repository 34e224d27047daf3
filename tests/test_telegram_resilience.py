"""Issue 11: the bot survives its API, and stops when it must.

Each test drives the real python-telegram-bot against the fake Bot API with an injected
failure (or runs the bot in a child process for exit codes and signals).
"""

from __future__ import annotations

import asyncio
import html
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import run_cli
from fake_telegram import FakeTelegram
from telegram_helpers import (
    FAST,
    TOKEN,
    FakeService,
    bot_for,
    check_sent,
    run,
    running,
    spawn_bot,
)

from qa_bot.telegram.ratelimit import SlidingWindowRateLimiter
from qa_bot.telegram.texts import (
    TEXT_ERROR,
    TEXT_EXPIRED,
    TEXT_SHUTTING_DOWN,
    TEXT_TOO_LONG,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def fake() -> FakeTelegram:
    with FakeTelegram(TOKEN) as server:
        yield server


def _stop(proc) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    if proc.poll() is None:
        proc.kill()
    return proc.communicate()


# ----------------------------------------------------------------------------- sends


def test_send_is_retried_on_500_until_the_api_recovers(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.fail_next("sendMessage", status=500, description="Internal Server Error", count=3)
            fake.enqueue_private_text(1101, "服务器出错时的问题")
            sent = await fake.wait_for_messages(1)
            await fake.settle(0.2)
        assert "服务器出错时的问题" in sent[0]["text"]
        assert [p["text"] for p in fake.sent(1101)] != [TEXT_ERROR]
        assert len(fake.calls("sendMessage")) == 4  # three 500s, then the answer, once

    run(scenario)


def test_send_is_retried_after_a_timeout(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        app = bot_for(fake, FakeService(), tuning=replace(FAST, read_timeout=0.5))
        async with running(app):
            fake.hang_next("sendMessage", 1.5)
            fake.enqueue_private_text(1102, "超时后的问题")
            sent = await fake.wait_for_messages(1)
        assert "超时后的问题" in sent[0]["text"]

    run(scenario)


def test_bad_request_resends_the_answer_as_plain_text(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.fail_next(
                "sendMessage",
                status=400,
                description="Bad Request: can't parse entities: unsupported start tag",
            )
            fake.enqueue_private_text(1103, "标签")
            sent = await fake.wait_for_messages(1)
            await fake.settle(0.2)
        assert len(sent) == 1
        plain = sent[0]
        assert "parse_mode" not in plain  # plain text: nothing left for Telegram to parse
        assert "利率 <b>上调</b> & 下调" in plain["text"]  # the answer itself, unescaped
        assert "A&B <i>公司</i> (https://e.com/a?x=1&y=2)" in plain["text"]

    run(scenario)


# ----------------------------------------------------------------------------- rate limit


def test_rate_limit_notice_is_sent_once_and_others_are_not_delayed(fake: FakeTelegram) -> None:
    service = FakeService()

    async def scenario() -> None:
        # Production flood limits (30 messages a second overall).
        app = bot_for(fake, service, rate_limit_per_minute=10, tuning=replace(FAST))
        async with running(app):
            for i in range(600):
                fake.enqueue_private_text(1201, f"刷屏{i}")
            deadline = time.monotonic() + 30
            while len(service.asked) < 10 or fake.pending_updates():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            asked_at = time.monotonic()
            fake.enqueue_private_text(1202, "别人的问题")
            await fake.wait_for_messages(1, chat_id=1202, timeout=20)
            waited = time.monotonic() - asked_at
            await fake.settle(0.5)
        notices = [p for p in fake.sent(1201) if "太频繁" in p["text"]]
        assert len(notices) == 1, len(notices)
        assert "每分钟最多 10 个问题" in notices[0]["text"]
        assert len(fake.sent(1201)) == 11  # ten answers and the one notice
        assert waited < 3.0, f"another user waited {waited:.1f} s"

    run(scenario, timeout=80)


def test_rate_limit_tells_again_only_after_the_window() -> None:
    now = [0.0]
    limiter = SlidingWindowRateLimiter(2, 60.0, clock=lambda: now[0])
    first = [limiter.check(1) for _ in range(5)]
    assert [v.allowed for v in first] == [True, True, False, False, False]
    assert [v.notify for v in first] == [False, False, True, False, False]
    assert limiter.check(2).allowed  # per user
    now[0] += 61
    assert limiter.check(1).allowed and limiter.check(1).allowed
    again = limiter.check(1)
    assert not again.allowed and again.notify  # a new stretch: told once more


# ----------------------------------------------------------------------------- callbacks


def test_more_sources_key_from_another_chat_reveals_nothing(fake: FakeTelegram) -> None:
    async def scenario() -> None:
        async with running(bot_for(fake, FakeService())):
            fake.enqueue_private_text(1301, "多 来源的问题")
            await fake.wait_for_messages(1, chat_id=1301)
            call = fake.calls("sendMessage", chat_id=1301)[0]
            data = call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            elsewhere = {**call.result, "chat": fake.chat(1302, "private")}
            stolen = fake.enqueue_callback_query(elsewhere, data, user_id=1302)
            await fake.wait_for("answerCallbackQuery", 1)
            own = fake.enqueue_callback_query(call.result, data, user_id=1301)
            await fake.wait_for_messages(2, chat_id=1301)
            answers = await fake.wait_for("answerCallbackQuery", 2)
        by_id = {c.params["callback_query_id"]: c.params for c in answers}
        assert by_id[stolen]["text"] == TEXT_EXPIRED
        assert fake.sent(1302) == []
        assert by_id[own].get("text") is None  # the right chat still gets its sources
        assert fake.sent(1301)[1]["text"].startswith("<b>更多来源：</b>")

    run(scenario)


# ----------------------------------------------------------------------------- questions


class _ShortWindow(FakeService):
    max_question_chars = 50


def test_length_limit_follows_the_service_and_says_both_numbers(fake: FakeTelegram) -> None:
    service = _ShortWindow()

    async def scenario() -> None:
        async with running(bot_for(fake, service)):
            fake.enqueue_private_text(1401, "问" * 51)
            await fake.wait_for_messages(1, chat_id=1401)
            fake.enqueue_private_text(1401, "问" * 50)
            await fake.wait_for_messages(2, chat_id=1401)
        refusal, answer = (p["text"] for p in fake.sent(1401))
        assert refusal == html.escape(TEXT_TOO_LONG.format(length=51, limit=50))
        assert "51 字" in refusal and "最多 50 字" in refusal
        check_sent(fake.sent(1401)[1])
        assert "问" * 50 in answer and service.questions == ["问" * 50]

    run(scenario)


# ----------------------------------------------------------------------------- process


def _assert_exited_on_rejected_token(proc: subprocess.Popen[str], out: str, err: str) -> None:
    """Exit 2 (a supervisor restarts the bot), one line naming the setting, no token."""
    assert proc.returncode == 2, err
    assert "CONFIG ERROR: Telegram rejected TELEGRAM_BOT_TOKEN" in out
    assert TOKEN not in out + err


def test_401_from_get_updates_while_running_exits_nonzero(fake: FakeTelegram) -> None:
    proc = spawn_bot(fake.base_url)
    try:
        fake.wait_for_sync("setMyCommands", timeout=20)
        fake.enqueue_private_text(1501, "撤销前的问题")
        fake.wait_for_sync("sendMessage", timeout=10)
        fake.fail_next("getUpdates", status=401, description="Unauthorized")
        out, err = proc.communicate(timeout=15)
    finally:
        _stop(proc)
    _assert_exited_on_rejected_token(proc, out, err)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_api_at_start_is_one_line_and_exit_2() -> None:
    base_url = f"http://127.0.0.1:{_free_port()}/bot"  # nothing listens there
    proc = spawn_bot(base_url)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        _stop(proc)
    assert proc.returncode == 2, err
    assert out.startswith(f"CONFIG ERROR: cannot reach the Telegram Bot API at {base_url}: ")
    assert len(out.splitlines()) == 1
    assert "Traceback" not in err
    assert TOKEN not in out + err


def test_sigterm_drains_quick_answers_and_cancels_slow_ones_within_10s(
    fake: FakeTelegram,
) -> None:
    proc = spawn_bot(fake.base_url)
    try:
        fake.wait_for_sync("setMyCommands", timeout=20)
        fake.enqueue_private_text(1601, "慢3 快答完的问题")
        fake.enqueue_private_text(1602, "慢40 答不完的问题")
        fake.wait_for_sync("sendChatAction", 2, timeout=10)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        took = time.monotonic() - started
    finally:
        _stop(proc)
    assert proc.returncode == 0, err
    assert took < 10, f"stopping took {took:.1f} s"
    assert "STOPPED cleanly" in out
    assert "回答：慢3 快答完的问题" in fake.sent(1601)[0]["text"]  # drained
    assert [p["text"] for p in fake.sent(1602)] == [html.escape(TEXT_SHUTTING_DOWN)]


def test_env_file_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes("TELEGRAM_BOT_TOKEN=令牌\n".encode("gb18030"))
    env = {k: None for k in os.environ if k.startswith(("TELEGRAM_", "QA_BOT_"))}
    code, out, err = run_cli(["telegram"], env=env, cwd=tmp_path, timeout=60)
    assert code == 2, err
    assert "Traceback" not in err
    assert ".env is not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_401_on_send_in_webhook_mode_exits_nonzero(fake: FakeTelegram) -> None:
    port = _free_port()
    proc = spawn_bot(fake.base_url, "https://bot.example.com/hook", str(port))
    try:
        secret = fake.wait_for_sync("setWebhook", timeout=20)[0].params["secret_token"]
        fake.fail_next("sendMessage", status=401, description="Unauthorized", count=5)
        update = {"update_id": 1, "message": fake.make_message(1701, text="问题")}
        deadline = time.monotonic() + 10
        while True:  # the webhook server starts right after setWebhook
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request(
                    "POST",
                    "/hook",
                    body=json.dumps(update).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "X-Telegram-Bot-Api-Secret-Token": secret,
                    },
                )
                assert conn.getresponse().status == 200
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        out, err = proc.communicate(timeout=15)
    finally:
        _stop(proc)
    _assert_exited_on_rejected_token(proc, out, err)
