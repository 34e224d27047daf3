"""Ingest: every rule on a hand-made post, then the real sample corpus."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from qa_bot.ingest import CorpusError, PostError, file_hash, load_corpus, log_skips, parse_post
from qa_bot.types import Article

SHARED = Path(__file__).resolve().parents[2] / "shared"
FINEWS = SHARED / "corpus-sample" / "finews"
SEED = SHARED / "corpus-sample" / "seed"

FRONT = """---
layout: post
title: "{title}"
date: {date}
categories: emnews
tags: 东财滚动新闻
---
"""


def post(body: str, *, title: str = "测试标题", date: str = "2021-12-08 10:46:18") -> str:
    return FRONT.format(title=title, date=date) + body


def parse(tmp_path: Path, text: str | bytes, name: str = "2021-12-08-1.md") -> Article:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return parse_post(path, name)


# --------------------------------------------------------------------------- front matter


def test_date_without_timezone(tmp_path: Path) -> None:
    art = parse(tmp_path, post("\n正文一句话。\n", date="2021-12-08 10:46:18"))
    assert art.date == "2021-12-08T10:46:18"
    assert art.title == "测试标题"
    assert art.categories == ("emnews",)
    assert art.tags == ("东财滚动新闻",)


def test_date_with_timezone(tmp_path: Path) -> None:
    art = parse(tmp_path, post("\n正文一句话。\n", date="2021-12-28 19:27:59 +0800"))
    assert art.date == "2021-12-28T19:27:59+08:00"


@pytest.mark.parametrize("raw", [" +0800", "", "not a date", "2021-13-45 10:00:00"])
def test_unusable_date_is_none_not_a_skip(tmp_path: Path, raw: str) -> None:
    art = parse(tmp_path, post("\n正文一句话。\n", date=raw))
    assert art.date is None


def test_blank_line_before_front_matter(tmp_path: Path) -> None:
    art = parse(tmp_path, "\n" + post("\n正文一句话。\n"))
    assert art.title == "测试标题"
    assert art.paragraphs == ("正文一句话。",)


def test_categories_and_tags_as_lists(tmp_path: Path) -> None:
    text = "---\ntitle: t\ncategories: [a, b]\ntags:\n  - 甲\n  - 乙\n---\n正文。\n"
    art = parse(tmp_path, text)
    assert art.categories == ("a", "b")
    assert art.tags == ("甲", "乙")


def test_empty_title_falls_back_to_first_sentence(tmp_path: Path) -> None:
    body = "\n国内首款使用超低GWP制冷剂的新能源汽车来了！后面还有更多的内容。\n"
    art = parse(tmp_path, post(body, title="", date=" +0800"))
    assert art.title == "国内首款使用超低GWP制冷剂的新能源汽车来了！"


def test_fallback_title_is_truncated(tmp_path: Path) -> None:
    art = parse(tmp_path, post("\n" + "很长" * 50 + "。\n", title=""))
    assert len(art.title) <= 40
    assert art.title.endswith("…")


def test_content_hash_is_sha256_of_raw_bytes(tmp_path: Path) -> None:
    text = post("\n正文。\n")
    art = parse(tmp_path, text)
    assert art.content_hash == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert file_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


# --------------------------------------------------------------------------- HTML bodies

HTML_BODY = (
    '<p style="display:none;height:1px;overflow:hidden;"><br /></p>'
    "<!-- EM_StockImg_Start -->"
    '<p style="text-align:center;"><a href="http://quote.eastmoney.com/unify/r/106.NIO" '
    'class="EmImageRemark"><img src="https://x/k.png" alt="K图 NIO_0" /></a></p>'
    "<!-- EM_StockImg_End -->"
    '<p>霍尼韦尔宣布为<span id="stock_106.NIO"><a href="http://quote.eastmoney.com/unify/r/106.NIO" '
    'class="keytip">蔚来</a></span><span id="quote_106.NIO"></span>旗下ET7'
    '<span web="1" class="em_stock_key_common">新能源</span>汽车提供制冷剂。<br /></p>'
    '<center><img src="https://x/pic.jpg" alt="Image" /></center>'
    '<p style="text-align:center;">图片来源：霍尼韦尔官网</p>'
    "<p>据了解，《&lt;蒙特利尔议定书&gt;基加利修正案》已生效，A&amp;B公司精度满足<1%。</p>"
    "<p><strong>什么是HFO-1234yf</strong></p>"
    "<p>HFO-1234yf是一种适用于汽车空调系统的制冷剂。</p>"
    '<p class="em_media">（文章来源：上海<span id="bk_90.BK0473"><a href="x">证券</a></span>'
    '<span id="bkquote_90.BK0473"></span>报）</p>'
)


def test_html_body(tmp_path: Path) -> None:
    art = parse(tmp_path, post(HTML_BODY + "\n\n<http://finance.eastmoney.com/news/1.html>\n"))
    assert art.paragraphs == (
        "霍尼韦尔宣布为蔚来旗下ET7新能源汽车提供制冷剂。",  # stock-link spans joined, no spaces
        "据了解，《<蒙特利尔议定书>基加利修正案》已生效，A&B公司精度满足<1%。",
        "什么是HFO-1234yf",  # a <strong> sub-heading is its own paragraph
        "HFO-1234yf是一种适用于汽车空调系统的制冷剂。",
        "（文章来源：上海证券报）",  # normalized, kept last so "where was it published" is answerable
    )
    assert art.source == "上海证券报"
    assert art.url == "http://finance.eastmoney.com/news/1.html"


def test_raw_less_than_in_markdown_text(tmp_path: Path) -> None:
    art = parse(tmp_path, post("\n且精度满足<1%，视场角达到120度以上，a<b。\n"))
    assert art.paragraphs == ("且精度满足<1%，视场角达到120度以上，a<b。",)


def test_whitespace_collapsed_inside_paragraph(tmp_path: Path) -> None:
    art = parse(tmp_path, post("<p>  第一行\n  第二行   Faraday   Future (FF) </p>\n"))
    assert art.paragraphs == ("第一行第二行 Faraday Future (FF)",)


# --------------------------------------------------------------------------- markdown bodies

FLASH = "港股半导体板块走高，英恒科技涨近8%。"
URL = "http://hk.eastmoney.com/news/1533,202112082206738071.html"


@pytest.mark.parametrize(
    "footer",
    [
        "",
        "\n[返回东财滚动新闻](../emnews/)\n[返回首页](../)\n",
        "\n[返回东财滚动新闻](//finews.withounder.com/emnews/)｜[返回首页](//finews.withounder.com/)0\n",
    ],
    ids=["none", "relative-two-line", "absolute-one-line"],
)
def test_footers_dropped_and_url_extracted(tmp_path: Path, footer: str) -> None:
    art = parse(tmp_path, post(f"\n{FLASH}\n\n<{URL}>\n{footer}"))
    assert art.paragraphs == (FLASH,)
    assert art.url == URL


def test_empty_url_is_none(tmp_path: Path) -> None:
    art = parse(tmp_path, post(f"\n{FLASH}\n\n<>\n\n[返回首页](../)\n"))
    assert art.url is None
    assert art.paragraphs == (FLASH,)


def test_source_line_in_markdown(tmp_path: Path) -> None:
    art = parse(tmp_path, post(f"\n{FLASH}\n\n（文章来源：新华财经）\n"))
    assert art.source == "新华财经"
    assert art.paragraphs == (FLASH, "（文章来源：新华财经）")


def test_markdown_paragraphs_and_syntax(tmp_path: Path) -> None:
    body = "\n第一段**加粗**内容，见[链接文字](http://x.y/z)。\n继续第一段。\n\n## 小标题\n\n![图](http://x/y.png)第二段*强调*。\n"
    art = parse(tmp_path, post(body))
    assert art.paragraphs == ("第一段加粗内容，见链接文字。继续第一段。", "小标题", "第二段强调。")


# --------------------------------------------------------------------------- digest lines

DIGEST_BODY = (
    "<p>据霍尼韦尔官网消息，5月24日，霍尼韦尔宣布为蔚来提供制冷剂。</p><p>第二段内容。</p>\n"
)


def test_digest_repeating_first_paragraph_is_dropped(tmp_path: Path) -> None:
    digest = "> 据霍尼韦尔官网消息，5月24日，霍尼韦尔宣布为蔚来提供制冷剂。（上海证券报）\n\n"
    art = parse(tmp_path, post(digest + DIGEST_BODY))
    assert art.paragraphs == (
        "据霍尼韦尔官网消息，5月24日，霍尼韦尔宣布为蔚来提供制冷剂。",
        "第二段内容。",
    )


def test_digest_spanning_two_paragraphs_is_dropped(tmp_path: Path) -> None:
    digest = "> 据霍尼韦尔官网消息，5月24日，霍尼韦尔宣布为蔚来提供制冷剂。 第二段内容。\n\n"
    art = parse(tmp_path, post(digest + DIGEST_BODY))
    assert len(art.paragraphs) == 2


def test_digest_as_only_text_is_kept(tmp_path: Path) -> None:
    art = parse(tmp_path, post("> 只有摘要这一句。\n\n<http://x.y/1.html>\n"))
    assert art.paragraphs == ("只有摘要这一句。",)


def test_digest_with_new_content_is_kept_first(tmp_path: Path) -> None:
    art = parse(tmp_path, post("> 摘要说了别的事情。\n\n" + DIGEST_BODY))
    assert art.paragraphs[0] == "摘要说了别的事情。"
    assert len(art.paragraphs) == 3


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("no-fm.md", "正文但没有前言。\n".encode(), "no front matter"),
        ("unclosed.md", b"---\ntitle: x\n\nbody\n", "no front matter"),
        ("bad-yaml.md", '---\ntitle: "unclosed\ndate: [1\n---\n正文。\n'.encode(), "invalid YAML"),
        ("list-fm.md", "---\n- a\n- b\n---\n正文。\n".encode(), "not a mapping"),
        (
            "empty.md",
            post(
                "\n<p style='display:none'>隐藏</p><!-- c -->\n\n<>\n\n[返回首页](../)\n"
            ).encode(),
            "empty body",
        ),
        ("latin1.md", "---\ntitle: Café\n---\nun café crème\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_posts_are_skipped_with_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, data: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(data)
    (tmp_path / "good.md").write_text(post("\n好的正文。\n"), encoding="utf-8")
    with pytest.raises(PostError, match=reason):
        parse_post(tmp_path / name, name)

    articles, skipped = load_corpus(tmp_path)
    with caplog.at_level(logging.WARNING, logger="qa_bot.ingest"):
        log_skips(skipped)  # what the watcher and the bot's /reindex log
    assert [a.path for a in articles] == ["good.md"]  # one bad file never stops the load
    assert len(skipped) == 1
    assert skipped[0].path == name
    assert reason in skipped[0].reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(name in w and reason in w for w in warnings)


def test_site_notice_is_a_valid_tiny_post(tmp_path: Path) -> None:
    text = '---\nlayout: post\ntitle: "开站大吉"\ndate: 2021-12-01 13:33:50\ncategories: sitenews\n---\n\n祝贺开站\n'
    art = parse(tmp_path, text, "2021-12-01-init.md")
    assert art.paragraphs == ("祝贺开站",)
    assert art.url is None


# --------------------------------------------------------------------------- load_corpus


def test_load_corpus_recursive_and_sorted(tmp_path: Path) -> None:
    posts = tmp_path / "_posts"
    (posts / "sub").mkdir(parents=True)
    (posts / "b.md").write_text(post("\n乙。\n"), encoding="utf-8")
    (posts / "a.md").write_text(post("\n甲。\n"), encoding="utf-8")
    (posts / "sub" / "c.md").write_text(post("\n丙。\n"), encoding="utf-8")
    (posts / "notes.txt").write_text("ignored", encoding="utf-8")
    articles, skipped = load_corpus(tmp_path)
    assert [a.path for a in articles] == ["_posts/a.md", "_posts/b.md", "_posts/sub/c.md"]
    assert skipped == []


def test_load_corpus_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")


def test_load_corpus_without_posts(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="no .md"):
        load_corpus(tmp_path)


# --------------------------------------------------------------------------- the real sample

BANNED = ("<p", "<span", "<!--", "返回", "display:none", "&lt;", "&amp;")


@pytest.mark.shared
def test_finews_sample() -> None:
    if not FINEWS.is_dir():
        pytest.skip("../shared/corpus-sample/finews not available")
    files = sorted(p.relative_to(FINEWS).as_posix() for p in FINEWS.rglob("*.md"))
    articles, skipped = load_corpus(FINEWS)
    assert sorted([a.path for a in articles] + [s.path for s in skipped]) == files
    assert all(s.reason for s in skipped)
    by_path = {a.path: a for a in articles}

    for art in articles:
        assert art.paragraphs, art.path
        assert art.title, art.path
        for para in art.paragraphs:
            assert para == para.strip() and para
            for bad in BANNED:
                assert bad not in para, (art.path, bad, para)

    # the malformed twin: empty title, date " +0800", empty "<>" link → ingested with fallbacks
    twin = by_path["-202205262391921712.md"]
    good = by_path["2022-05-26-202205262391921712.md"]
    assert twin.title == "国内首款使用超低GWP(全球变暖潜值)制冷剂的新能源汽车来了！"
    assert twin.date is None and twin.url is None
    assert twin.paragraphs == good.paragraphs
    assert good.date == "2022-05-26T00:19:55+08:00"
    assert good.source == "上海证券报"

    # the digest repeating the lead is indexed once
    lead = "据霍尼韦尔官网消息，5月24日，霍尼韦尔宣布为蔚来旗下ET7新能源汽车"
    assert sum(lead in p for p in good.paragraphs) == 1
    assert any("《<蒙特利尔议定书>基加利修正案》" in p for p in good.paragraphs)

    tof = by_path["2021-12-08-202112082206796814.md"]
    assert any("精度满足<1%" in p for p in tof.paragraphs)

    init = by_path["2021-12-01-init.md"]
    assert init.paragraphs == ("祝贺开站",)
    # the post with a blank line before its front matter
    assert by_path["2021-12-08-202112082206703990.md"].title.startswith("FF：")


@pytest.mark.shared
def test_seed_article() -> None:
    if not SEED.is_dir():
        pytest.skip("../shared/corpus-sample/seed not available")
    articles, skipped = load_corpus(SEED)
    assert skipped == []
    (art,) = articles
    assert art.date == "2021-12-28T19:27:59+08:00"
    assert art.url is not None and art.url.startswith("http")
    assert art.source == "新华财经"
    assert art.title == "【财经分析】杭州打造算力小镇 多地抢跑算力产业“新赛道”"
    assert sum("计划于2021-2023年内投资约30.67亿元" in p for p in art.paragraphs) == 1
    assert "杭州打造算力小镇谋划数字经济新增长极" in art.paragraphs
    assert not any("返回" in p for p in art.paragraphs)
    assert art.paragraphs[-1] == "（文章来源：新华财经）"
