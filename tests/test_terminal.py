"""The chat's Ctrl-C handling: a signal cancels an answer and nothing else."""

from __future__ import annotations

import os
import signal
import time

import pytest

from qa_bot.terminal import AnswerInterrupts


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs in the main thread at the next instruction


def test_a_signal_outside_an_answer_is_dropped_and_one_inside_cancels_it() -> None:
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with AnswerInterrupts() as interrupts:
            _sigint()  # between answers: nothing happens
            with pytest.raises(KeyboardInterrupt), interrupts.answering():
                _sigint()
                pytest.fail("the signal did not cancel the answer")
            _sigint()  # the flag is reset after a cancelled answer
        with pytest.raises(KeyboardInterrupt):  # the previous handler is back
            _sigint()
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_ignored_sigint_stays_ignored() -> None:
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with AnswerInterrupts() as interrupts, interrupts.answering():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            _sigint()
    finally:
        signal.signal(signal.SIGINT, before)
