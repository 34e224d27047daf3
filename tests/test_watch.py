"""``qa-bot watch``: the debouncer, ``watch_corpus`` on a real folder, and the command."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli, start_cli

from qa_bot.watch import _Debouncer, watch_corpus

POST = """---
layout: post
title: "{title}"
date: 2022-06-{day:02d} 09:30:00 +0800
categories: emnews
tags: 东财滚动新闻
---

{body}
"""


def write_post(folder: Path, i: int, extra: str = "") -> Path:
    p = folder / f"2022-06-{i % 28 + 1:02d}-watch{i:03d}.md"
    p.write_text(
        POST.format(
            title=f"东岭化工第{i}套装置投产",
            day=i % 28 + 1,
            body=f"东岭化工股份有限公司公告，第{i}套乙烯装置已于近日投产，年产能{50 + i}万吨。{extra}",
        ),
        encoding="utf-8",
    )
    return p


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- debouncer


def test_burst_is_applied_once_after_the_quiet_period() -> None:
    clock = FakeClock()
    d = _Debouncer(clock)
    assert d.due(2.0, 30.0) == 0  # nothing happened
    applied = []
    for _ in range(500):
        d.hit()
        clock.now += 0.005  # 500 events within 2.5 s
        if n := d.due(2.0, 30.0):
            applied.append(n)
    assert applied == []
    clock.now += 1.9
    assert d.due(2.0, 30.0) == 0  # not quiet long enough yet
    clock.now += 0.2
    assert d.due(2.0, 30.0) == 500
    assert d.due(2.0, 30.0) == 0  # consumed
    clock.now += 100
    assert d.due(2.0, 30.0) == 0
    d.hit()  # a later single event is a new burst
    clock.now += 2.0
    assert d.due(2.0, 30.0) == 1


def test_max_wait_forces_an_apply_during_a_never_ending_burst() -> None:
    clock = FakeClock()
    d = _Debouncer(clock)
    fired: list[tuple[float, int]] = []
    start = clock.now
    for _ in range(1000):  # one event every 0.1 s for 100 s: never quiet for 2 s
        d.hit()
        clock.now += 0.1
        if n := d.due(2.0, 30.0):
            fired.append((round(clock.now - start, 1), n))
    assert [t for t, _ in fired] == pytest.approx([30.0, 60.0, 90.0], abs=0.25)
    assert all(299 <= n <= 301 for _, n in fired), fired
    # and once the burst ends, the rest is applied after the quiet period
    clock.now += 2.0
    rest = d.due(2.0, 30.0)
    assert rest > 0 and rest + sum(n for _, n in fired) == 1000


# --------------------------------------------------------------------------- watch_corpus


class Counter:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls.append(time.monotonic())
            return f"update #{len(self.calls)}"

    @property
    def n(self) -> int:
        with self.lock:
            return len(self.calls)


def wait_for(pred, timeout: float, step: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_watch_corpus_one_update_per_burst(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "_posts").mkdir(parents=True)
    update = Counter()
    stop = threading.Event()
    t = threading.Thread(
        target=watch_corpus,
        args=(corpus, update),
        kwargs={"quiet_seconds": 0.4, "max_wait_seconds": 30, "poll_seconds": 0.05, "stop": stop},
        daemon=True,
    )
    t.start()
    try:
        assert wait_for(lambda: update.n == 1, 5), "run_initial did not update"
        time.sleep(0.3)  # let the observer settle
        t0 = time.monotonic()
        for i in range(50):
            write_post(corpus / "_posts", i)
        written = time.monotonic()
        assert written - t0 < 0.4, "writing 50 files was slower than the quiet period"
        assert wait_for(lambda: update.n >= 2, 5), "the burst was never applied"
        assert update.calls[1] - written >= 0.35  # after the quiet period, not per file
        time.sleep(1.0)
        assert update.n == 2, "a burst of 50 files gave more than one update"

        (corpus / "notes.txt").write_text("not a post", encoding="utf-8")
        time.sleep(1.0)
        assert update.n == 2, "a non-post file triggered an update"

        write_post(corpus / "_posts", 7, extra="产品主要供应华东市场。")
        assert wait_for(lambda: update.n >= 3, 5), "a later edit was not applied"
        time.sleep(0.8)
        assert update.n == 3
    finally:
        t_stop = time.monotonic()
        stop.set()
        t.join(timeout=5)
    assert not t.is_alive()
    assert time.monotonic() - t_stop < 1.0


def test_watch_corpus_survives_a_failing_update(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    calls = []

    def update() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return "ok"

    stop = threading.Event()
    t = threading.Thread(
        target=watch_corpus,
        args=(corpus, update),
        kwargs={"quiet_seconds": 0.2, "poll_seconds": 0.05, "stop": stop},
        daemon=True,
    )
    t.start()
    try:
        assert wait_for(lambda: len(calls) == 1, 5)
        time.sleep(0.3)
        write_post(corpus, 1)
        assert wait_for(lambda: len(calls) == 2, 5), "the watcher died with the first update"
    finally:
        stop.set()
        t.join(timeout=5)
    assert not t.is_alive()


# --------------------------------------------------------------------------- qa-bot watch


def test_watch_command_publishes_new_posts(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        write_post(corpus, i)
    env = {
        "QA_BOT_CORPUS_DIR": str(corpus),
        "QA_BOT_INDEX_DIR": str(tmp_path / "idx"),
        "QA_BOT_CACHE_DIR": str(tmp_path / "cache"),
        "QA_BOT_EMBEDDING_MODEL": "hash-bigram-256",
        "QA_BOT_LOG_LEVEL": "INFO",
    }
    code, out, err = run_cli(["index", "build", "--json"], env, cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out)["articles"] == 3

    def articles() -> int:
        code, out, err = run_cli(["index", "stats", "--json"], env, cwd=tmp_path)
        assert code == 0, err
        return json.loads(out)["articles"]

    proc = start_cli(["watch", "--quiet-seconds", "0.5"], env, cwd=tmp_path)
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        # the initial update (nothing to publish) shows the watcher is running
        assert wait_for(lambda: any("index update:" in ln for ln in stderr_lines), 60, 0.1), (
            "".join(stderr_lines)
        )
        write_post(corpus, 3)
        write_post(corpus, 4)
        deadline = time.monotonic() + 60
        while articles() < 5:
            assert proc.poll() is None, "".join(stderr_lines)
            assert time.monotonic() < deadline, "the new posts were not indexed within 60 s"
            time.sleep(0.3)
        time.sleep(1.0)  # no further update should follow
    finally:
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except Exception:
            proc.kill()
            proc.wait()
            raise
        reader.join(timeout=5)
    assert time.monotonic() - t_term < 5
    log = "".join(stderr_lines)
    assert code == 0, log
    assert "Traceback" not in log
    updates = [ln for ln in stderr_lines if "index update:" in ln]
    assert len(updates) == 2, log
    assert "(nothing to publish)" in updates[0]
    assert "+2 ~0 -0 articles" in updates[1] and "nothing to publish" not in updates[1]
    assert proc.stdout is not None and proc.stdout.read() == ""
