"""Undecodable input costs one line of output, never the session or the batch."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import cli_command, cli_env
from test_updates_cli import HASH_MODEL, NEW_POSTS, Site, write_post


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("input")
    site = Site(root / "site", HASH_MODEL, root / "cache")
    site.corpus.mkdir(parents=True)
    for name, title, paras, _q, _f in NEW_POSTS:
        write_post(site.corpus, name, title, paras)
    site.ok_json("index", "build", "--json")
    return site


def _run(site: Site, args: list[bytes], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*map(str.encode, cli_command()), *args], input=stdin, capture_output=True,
        env=cli_env(site.env), timeout=300,
    )


def test_question_in_argv_that_is_not_utf8_is_one_line_and_exit_2(site: Site) -> None:
    p = _run(site, [b"ask", b"\xff\xfe\xe8\x8c\x85"])
    err = p.stderr.decode()
    assert p.returncode == 2 and p.stdout == b""
    assert "not UTF-8" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_line_in_json_batch_is_one_error_object_and_the_rest_are_answered(site: Site) -> None:
    questions = [q for *_, q, _f in NEW_POSTS[:2]]
    stdin = questions[0].encode() + b"\n\xff\xfe bad\n" + questions[1].encode() + b"\n"
    p = _run(site, [b"ask", b"--json"], stdin)
    assert p.returncode == 0, p.stderr.decode()
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(rows) == 3
    assert rows[0]["question"] == questions[0] and rows[2]["question"] == questions[1]
    assert rows[1]["line"] == 2 and "not UTF-8" in rows[1]["error"]


def test_piped_chat_skips_a_bad_line_and_goes_on(site: Site) -> None:
    q = NEW_POSTS[0][3]
    p = _run(site, [b"chat"], b"\xff\xfe\n" + q.encode() + b"\n")
    err, out = p.stderr.decode(), p.stdout.decode()
    assert p.returncode == 0, err
    assert "skipped a line" in err and "Traceback" not in err
    assert out.count("问>") >= 2 and ("答：" in out or "没有找到" in out)


def test_a_pasted_essay_is_cut_before_encoding(site: Site) -> None:
    q = NEW_POSTS[0][3] + "啊" * 30_000  # 90 KB: near the kernel's limit for one argument
    p = _run(site, [b"ask", b"--json", q.encode()])
    assert p.returncode == 0, p.stderr.decode()
    assert len(json.loads(p.stdout)["question"]) == 400
