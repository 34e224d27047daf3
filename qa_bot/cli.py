"""The ``qa-bot`` command: ask, chat, index build/update/stats/verify, eval, watch, telegram.

Heavy modules (torch, faiss, jieba) are imported inside commands so ``--help`` and
error paths stay instant. Known failures print one line on stderr and exit 2; only a
bug shows a traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .terminal import AnswerInterrupts, render_answer

if TYPE_CHECKING:
    from .config import Settings
    from .service import QAService

app = typer.Typer(
    help="新闻问答: ask questions of a folder of Jekyll news posts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build, update and check the on-disk index.", no_args_is_help=True)
app.add_typer(index_app, name="index")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

CorpusOpt = Annotated[Path | None, typer.Option("--corpus", help="Folder of posts (default: QA_BOT_CORPUS_DIR or corpus/).")]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="Index folder (default: QA_BOT_INDEX_DIR or embeddings/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ShrinkOpt = Annotated[bool, typer.Option("--allow-shrink", help="Publish even if many posts are gone or unreadable (remove posts on purpose).")]


class UserError(Exception):
    """A failure the user can fix; printed as one line."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(2)


def _settings(corpus: Path | None = None, index: Path | None = None) -> Settings:
    from pydantic import ValidationError

    from .config import Settings

    try:
        s = Settings()
    except ValidationError as e:
        first = e.errors()[0]
        raise UserError(f"bad setting {first['loc'][0] if first['loc'] else ''}: {first['msg']}") from e
    except UnicodeDecodeError as e:  # pydantic-settings reads .env as UTF-8
        raise UserError(f".env is not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8") from None
    update = {}
    if corpus is not None:
        update["corpus_dir"] = corpus
    if index is not None:
        update["index_dir"] = index
    s = s.model_copy(update=update)
    logging.basicConfig(
        level=getattr(logging, s.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # third-party chatter is not for users
    for noisy in ("httpx", "sentence_transformers", "transformers", "jieba", "faiss", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return s


def _known_errors() -> tuple[type[BaseException], ...]:
    from .embedding import ModelLoadError
    from .index import IndexProblem
    from .ingest import CorpusError

    return (UserError, ModelLoadError, IndexProblem, CorpusError)


# the disk, not the program: full, read-only, permissions, I/O, quota
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EDQUOT})


def _run(fn):  # type: ignore[no-untyped-def]
    """Call ``fn`` turning known failures into one line and exit code 2."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as e:
        if isinstance(e, _known_errors()):
            raise _fail(str(e)) from None
        if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
            where = f": {e.filename}" if e.filename else ""
            raise _fail(f"{e.strerror or e}{where}; the published index keeps answering") from None
        if isinstance(e, sqlite3.OperationalError) and "disk" in str(e):
            raise _fail(f"{e}; the published index keeps answering") from None
        raise


def _progress_update(service: QAService, *, full: bool, quiet: bool = False, allow_shrink: bool = False):  # type: ignore[no-untyped-def]
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    ) as bar:
        task = bar.add_task("embed", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return service.update(full=full, progress=progress, allow_shrink=allow_shrink)


def _report_json(report, skipped, seconds: float | None = None) -> dict:  # type: ignore[no-untyped-def]
    data = report.to_json()
    data["skipped"] = [{"path": s.path, "reason": s.reason} for s in skipped]
    if seconds is not None:
        data["seconds"] = round(seconds, 3)
    return data


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@index_app.command("build")
def index_build(corpus: CorpusOpt = None, index: IndexOpt = None, as_json: JsonOpt = False, allow_shrink: ShrinkOpt = False) -> None:
    """Build the index from scratch (reusing cached vectors of unchanged text)."""

    def go() -> None:
        from .service import QAService

        s = _settings(corpus, index)
        t0 = time.perf_counter()
        report, skipped = _progress_update(QAService(s), full=True, allow_shrink=allow_shrink)
        secs = time.perf_counter() - t0
        if as_json:
            data = _report_json(report, skipped, secs)
            _print_json(
                {"articles": data["total_articles"], "chunks": data["total_chunks"],
                 "skipped": data["skipped"], "seconds": data["seconds"],
                 "embedded_chunks": data["embedded_chunks"], "reused_chunks": data["reused_chunks"]}
            )
        else:
            for sk in skipped:
                err.print(f"[yellow]skipped[/] {escape(sk.path)}: {escape(sk.reason)}")
            out.print(
                f"built index: {report.total_articles} articles, {report.total_chunks} chunks "
                f"({report.embedded_chunks} embedded, {report.reused_chunks} from cache) in {secs:.1f}s"
            )

    _run(go)


@index_app.command("update")
def index_update(corpus: CorpusOpt = None, index: IndexOpt = None, as_json: JsonOpt = False, allow_shrink: ShrinkOpt = False) -> None:
    """Apply added, changed and removed posts; embed only text never seen before."""

    def go() -> None:
        from .service import QAService

        s = _settings(corpus, index)
        t0 = time.perf_counter()
        report, skipped = _progress_update(QAService(s), full=False, allow_shrink=allow_shrink)
        secs = time.perf_counter() - t0
        if as_json:
            data = _report_json(report, skipped, secs)
            keys = ("added", "changed", "removed", "unchanged", "embedded_chunks", "reused_chunks",
                    "total_chunks", "seconds", "skipped", "generation", "published")
            _print_json({k: data[k] for k in keys if k in data})
        else:
            for sk in skipped:
                err.print(f"[yellow]skipped[/] {escape(sk.path)}: {escape(sk.reason)}")
            out.print(
                f"updated: +{report.added} ~{report.changed} -{report.removed} ={report.unchanged} "
                f"articles; {report.embedded_chunks} chunks embedded, {report.reused_chunks} reused; "
                f"{report.total_chunks} chunks in total ({secs:.1f}s)"
            )

    _run(go)


@index_app.command("stats")
def index_stats_cmd(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Articles, chunks, model, size on disk, last update."""

    def go() -> None:
        from .index import open_store

        data = open_store(_settings(None, index)).stats().to_json()
        if as_json:
            _print_json(data)
            return
        from rich.table import Table

        t = Table(show_header=False)
        for k, v in data.items():
            t.add_row(str(k), escape(str(v)))
        out.print(t)

    _run(go)


@index_app.command("verify")
def index_verify(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Check every index file against the manifest's checksums; exit 1 on damage."""

    def go() -> None:
        from .index import open_store

        problems = open_store(_settings(None, index)).verify()
        if as_json:
            _print_json({"ok": not problems, "problems": problems})
        elif problems:
            for p in problems:
                err.print(f"[red]damaged:[/] {escape(p)}")
            err.print("run `qa-bot index build` to rebuild")
        else:
            out.print("index OK")
        if problems:
            raise typer.Exit(1)

    _run(go)


def _ensure_index(service: QAService) -> None:
    if not service.index_is_current():
        if service.has_index():
            err.print("the index was written by another version: updating it (cached vectors are reused)…")
        else:
            err.print("no index yet: building it from the corpus (once)…")
        report, skipped = _progress_update(service, full=not service.has_index())
        for sk in skipped:
            err.print(f"[yellow]skipped[/] {escape(sk.path)}: {escape(sk.reason)}")
        err.print(f"indexed {report.total_articles} articles, {report.total_chunks} chunks")


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question; with --json and none, one per line on stdin.")] = None,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50, help="Sources to return.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer one question (or many from stdin with --json)."""

    def go() -> None:
        from .service import QAService

        s = _settings(corpus, index)
        service = QAService(s)
        _ensure_index(service)
        if question is not None:
            if not question.strip():
                raise UserError("the question is empty")
            a = service.ask(_checked_text(question), top_k=top_k)
            if as_json:
                _print_json(a.to_json())
            else:
                render_answer(a, out, max_sources=top_k or s.top_k)
            return
        if not as_json:
            raise UserError("give a QUESTION, or use --json to read questions from stdin")
        for n, raw in enumerate(sys.stdin.buffer, 1):
            try:
                q = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                # one bad line costs one answer, not the rest of the batch
                _print_json({"line": n, "error": f"not UTF-8 text ({e.reason} at byte {e.start})"})
                continue
            if q:
                _print_json(service.ask(q, top_k=top_k).to_json())

    _run(go)


@app.command()
def chat(corpus: CorpusOpt = None, index: IndexOpt = None) -> None:
    """Interactive questions with line editing and history; Ctrl-D leaves."""

    def go() -> None:
        from .service import QAService

        s = _settings(corpus, index)
        service = QAService(s)
        _ensure_index(service)
        read = _line_reader(s)
        with AnswerInterrupts() as interrupts:
            out.print("[dim]新闻问答 — 输入问题，Ctrl-D 退出[/]")
            while (q := _next_question(read)) is not None:
                try:
                    with interrupts.answering():
                        render_answer(service.ask(q, conversation="terminal"), out)
                except KeyboardInterrupt:  # Ctrl-C cancels this answer, not the session
                    err.print("[dim]（已取消）[/]")
            out.print()

    _run(go)


def _next_question(read) -> str | None:  # type: ignore[no-untyped-def]
    """The next non-blank line, or None at the end of input (Ctrl-D)."""
    while True:
        try:
            q = read()
        except EOFError:
            return None
        except KeyboardInterrupt:  # prompt_toolkit's Ctrl-C key: a fresh prompt
            continue
        except _BadLine as e:
            err.print(f"[yellow]skipped a line:[/] {escape(str(e))}")
            continue
        if q.strip():
            return q


class _BadLine(Exception):
    """A chat line that cannot be read; the session goes on."""


def _checked_text(text: str) -> str:
    """``text`` if it is valid Unicode: argv bytes that are not UTF-8 arrive as lone
    surrogates, which would fail later, deep inside the tokenizer."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError("the question is not UTF-8 text") from None
    return text


def _line_reader(s: Settings):  # type: ignore[no-untyped-def]
    """prompt_toolkit (history, editing) on a terminal; plain lines when piped."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        s.cache_dir.mkdir(parents=True, exist_ok=True)
        session: PromptSession[str] = PromptSession(history=FileHistory(str(s.cache_dir / "chat_history")))
        return lambda: session.prompt("问> ")

    def plain() -> str:
        sys.stdout.write("问> ")
        sys.stdout.flush()
        line = sys.stdin.buffer.readline()
        if not line:
            raise EOFError
        try:
            return line.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as e:
            raise _BadLine(f"not UTF-8 text ({e.reason} at byte {e.start})") from None

    return plain


@app.command("eval")
def eval_cmd(
    questions: Annotated[Path, typer.Option("--questions", exists=True, dir_okay=False, help="JSONL {q, answer} or SQuAD-format JSON.")],
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
    failures: Annotated[bool, typer.Option("--failures", help="List the misses.")] = False,
    fusion: Annotated[str | None, typer.Option("--fusion", help="Override fusion: score or rrf.")] = None,
    dense_weight: Annotated[float | None, typer.Option("--dense-weight", min=0.0, max=1.0)] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Answer like a typical RAG stack instead (0.5/0.5 fusion, best sentence), for comparison.")] = False,
) -> None:
    """Answer every question of a set and report answer_hit, passage_hit@1/@3, abstentions, latency."""

    def go() -> None:
        import dataclasses

        from .evaluate import (
            baseline_asker,
            eval_dirs,
            load_questions,
            run_eval,
            write_posts_corpus,
        )
        from .retrieval import RetrievalConfig
        from .service import QAService

        s = _settings(corpus, index)
        qs, posts = load_questions(questions)
        gen_corpus, gen_index = eval_dirs(s.cache_dir, questions, corpus if posts is None else None)
        if posts is not None:
            write_posts_corpus(posts, gen_corpus)
            corpus_dir = gen_corpus
        elif corpus is None:
            raise UserError("--corpus is needed for a JSONL question file")
        else:
            corpus_dir = corpus
        s = s.model_copy(update={"corpus_dir": corpus_dir, "index_dir": index or gen_index})
        cfg = RetrievalConfig()
        if baseline:
            cfg = dataclasses.replace(cfg, fusion="score", dense_weight=0.5, sentence_weight=0.0)
        if fusion:
            cfg = dataclasses.replace(cfg, fusion=fusion)
        if dense_weight is not None:
            cfg = dataclasses.replace(cfg, dense_weight=dense_weight)
        service = QAService(s, retrieval=cfg)
        report_u, _ = _progress_update(service, full=False, quiet=as_json)
        ask = baseline_asker(service) if baseline else (lambda q: service.ask(q))
        ask(qs[0].q)  # warm-up: latency figures are for a loaded service
        report = run_eval(qs, ask)
        if as_json:
            _print_json(report.to_json(with_failures=failures))
            return
        from rich.table import Table

        t = Table(title=f"qa-bot eval — {questions.name} ({report.questions} questions, "
                        f"{report_u.total_chunks} chunks)")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k, v in report.to_json().items():
            t.add_row(k, str(v))
        out.print(t)
        if failures:
            for f in report.failures:
                out.print(f"[red]✗[/] {escape(f['q'])} gold={escape(str(f['gold']))} "
                          f"answer={escape(str(f['answer']))}")

    _run(go)


@app.command()
def watch(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    quiet: Annotated[float, typer.Option("--quiet-seconds", min=0.1, help="Apply an update once the folder has been quiet this long.")] = 2.0,
) -> None:
    """Watch the corpus folder; update and publish the index after each burst of changes."""

    def go() -> None:
        import signal
        import threading

        from .service import QAService
        from .watch import watch_corpus

        s = _settings(corpus, index)
        if not s.corpus_dir.is_dir():
            raise UserError(f"corpus folder not found: {s.corpus_dir}")
        service = QAService(s)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

        def update() -> str:
            from .ingest import log_skips

            r, skipped = service.update()
            log_skips(skipped)
            return (
                f"index update: +{r.added} ~{r.changed} -{r.removed} articles, "
                f"{r.embedded_chunks} embedded, {r.reused_chunks} reused, {r.total_chunks} chunks, "
                f"{len(skipped)} skipped, generation {r.generation}"
                + ("" if r.published else " (nothing to publish)")
            )

        watch_corpus(s.corpus_dir, update, quiet_seconds=quiet, stop=stop)

    _run(go)


@app.command()
def telegram(corpus: CorpusOpt = None, index: IndexOpt = None) -> None:
    """Run the Telegram bot (long polling, or webhook when QA_BOT_WEBHOOK_URL is set)."""

    def go() -> None:
        from .service import QAService
        from .telegram import BotConfigError, run_bot, validate_token

        s = _settings(corpus, index)
        try:
            validate_token(s)  # before minutes of index building, not after
        except BotConfigError as e:
            raise UserError(str(e)) from None
        # the reply shows 3 sources; the 「更多来源」 button reveals the rest
        service = QAService(s.model_copy(update={"top_k": max(s.top_k, 8)}))
        try:
            _ensure_index(service)
            # load the reader (merged onto the base on first use ever) before taking
            # questions, so the first one is not the one that waits
            _ = service.reader
            run_bot(s, service)
        except BotConfigError as e:
            raise UserError(str(e)) from None

    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
