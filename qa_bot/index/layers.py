"""Reading a layered generation: its base's files plus a ``delta/`` segment.

An update that changes a few posts of a large index publishes a generation whose
big files (meta.sqlite, vectors.faiss, lexical/, sentences/) are hard links to the
previous generation's, plus ``delta/`` (``qa_bot.index.delta`` writes it):

    delta/meta.sqlite   the articles and chunks written since the base, in the same
                        schema, plus ``hidden(path)``: base articles removed or replaced
    delta/vectors.npy   float32 vectors of delta/'s chunks, in their ``seq`` order
    delta/lexical/, delta/sentences/   the artifacts' share (qa_bot.lexical, qa_bot.sentences)

Readers see one index: SQLite attaches delta/ and temp views named like the tables
(``chunks``, ``articles``) union the live base rows with delta's, so every query of
``IndexSnapshot`` runs unchanged; faiss drops the hidden base ids from its in-memory
copy and adds delta's vectors, giving the same index a full rewrite would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import faiss
import numpy as np

from .errors import IndexCorrupt
from .faiss_index import check_faiss, faiss_ids, faiss_kind, read_faiss
from .generations import DELTA_META_NAME, DELTA_VECTORS_NAME, VECTORS_NAME, Manifest, Vanished

HIDDEN_TABLE = "hidden"

# temp objects shadow main's tables of the same name; the base arm names main. explicitly
_VIEWS = f"""
CREATE TEMP VIEW chunks AS
    SELECT * FROM main.chunks WHERE article_path NOT IN (SELECT path FROM delta.{HIDDEN_TABLE})
    UNION ALL SELECT * FROM delta.chunks;
CREATE TEMP VIEW articles AS
    SELECT * FROM main.articles WHERE path NOT IN (SELECT path FROM delta.{HIDDEN_TABLE})
    UNION ALL SELECT * FROM delta.articles;
"""


def attach_delta(conn: sqlite3.Connection, gen_dir: Path) -> None:
    """Make ``conn`` (the base meta.sqlite, read-only) read as the layered generation."""
    path = gen_dir / DELTA_META_NAME
    if not path.is_file():
        if not gen_dir.exists():
            raise Vanished()
        raise IndexCorrupt(path, "missing")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        conn.execute("ATTACH DATABASE ? AS delta", (uri,))
        conn.executescript(_VIEWS)
    except sqlite3.DatabaseError as e:
        raise IndexCorrupt(path, f"unreadable: {e}") from e


def hidden_vids(conn: sqlite3.Connection) -> np.ndarray:
    """Vector ids of the base chunks that delta/ hides (conn: attached)."""
    rows = conn.execute(
        f"SELECT vid FROM main.chunks WHERE article_path IN (SELECT path FROM delta.{HIDDEN_TABLE})"
    )
    return np.array([r[0] for r in rows], dtype=np.int64)


def delta_vids(conn: sqlite3.Connection) -> np.ndarray:
    return np.array([r[0] for r in conn.execute("SELECT vid FROM delta.chunks ORDER BY seq")], dtype=np.int64)


@dataclass
class LiveVectors:
    """A reader's dense index: the base's faiss index, left untouched so that the next
    generation over the same base can share it (no re-read of a 150 MB file per
    update), searched without the ids delta/ hides, merged with delta/'s own index."""

    base: faiss.Index
    hidden: np.ndarray
    delta: faiss.Index | None
    params: faiss.SearchParameters | None

    @property
    def ntotal(self) -> int:
        return int(self.base.ntotal) - int(self.hidden.size) + (int(self.delta.ntotal) if self.delta else 0)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per row of ``q``; id -1 where fewer are found."""
        kb = max(1, min(k, int(self.base.ntotal)))
        if self.params is not None:
            scores, ids = self.base.search(q, kb, params=self.params)
        else:
            scores, ids = self.base.search(q, kb)
        if self.delta is None or self.delta.ntotal == 0:
            return scores, ids
        ds, di = self.delta.search(q, min(k, int(self.delta.ntotal)))
        scores, ids = np.concatenate([scores, ds], axis=1), np.concatenate([ids, di], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def ids(self) -> np.ndarray:
        base = faiss_ids(self.base)
        live = base[~np.isin(base, self.hidden)]
        return np.concatenate([live, faiss_ids(self.delta)]) if self.delta is not None else live


def open_live_vectors(
    gen_dir: Path, m: Manifest, conn: sqlite3.Connection, load: Callable[[Path], faiss.Index] = read_faiss
) -> LiveVectors:
    """The reader's dense index of the generation (``load`` may hand out a shared base)."""
    vec_path = gen_dir / VECTORS_NAME
    base = load(vec_path)
    if base.d != m.dim:
        raise IndexCorrupt(vec_path, f"dimension {base.d}, manifest says {m.dim}")
    expected = "ivf" if m.faiss.kind == "ivf" else "flat"
    if faiss_kind(base) != expected:
        raise IndexCorrupt(vec_path, f"faiss index is not of kind {expected}")
    nprobe = m.faiss.nprobe or (int(base.nprobe) if expected == "ivf" else 0)
    hidden, delta, params = np.zeros(0, np.int64), None, None
    if m.delta is not None:
        try:
            hidden, vids = np.unique(hidden_vids(conn)), delta_vids(conn)
        except sqlite3.DatabaseError as e:
            raise IndexCorrupt(gen_dir / DELTA_META_NAME, f"unreadable: {e}") from e
        x = _delta_matrix(gen_dir / DELTA_VECTORS_NAME, len(vids), m.dim)
        delta = faiss.IndexIDMap2(faiss.IndexFlatIP(m.dim))
        if len(vids):
            delta.add_with_ids(x, vids)
        if hidden.size:
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(hidden))
            # the IVF parameters object would otherwise search with nprobe 1
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe) if expected == "ivf" else faiss.SearchParameters(sel=sel)
            params._keep = sel  # the SWIG object does not own the selector
    elif expected == "ivf" and nprobe:
        base.nprobe = nprobe
    live = LiveVectors(base, hidden, delta, params)
    if live.ntotal != m.chunks:
        raise IndexCorrupt(vec_path, f"{live.ntotal} vectors, manifest says {m.chunks} chunks")
    return live


def read_vectors(gen_dir: Path, m: Manifest, conn: sqlite3.Connection) -> faiss.Index:
    """The generation's faiss index as one new in-memory index (the base's file with
    delta/ applied): what a full rewrite patches."""
    vec_path = gen_dir / VECTORS_NAME
    index = read_faiss(vec_path)
    if m.delta is not None:
        try:
            hidden, vids = hidden_vids(conn), delta_vids(conn)
        except sqlite3.DatabaseError as e:
            raise IndexCorrupt(gen_dir / DELTA_META_NAME, f"unreadable: {e}") from e
        if hidden.size:
            index.remove_ids(hidden)
        x = _delta_matrix(gen_dir / DELTA_VECTORS_NAME, len(vids), m.dim)
        if len(vids):
            index.add_with_ids(x, vids)
    check_faiss(vec_path, index, m)
    return index


def _delta_matrix(path: Path, n: int, dim: int) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise IndexCorrupt(path, "missing") from None
    except (OSError, ValueError) as e:
        raise IndexCorrupt(path, f"unreadable: {e}") from e
    if x.dtype != np.float32 or x.shape != (n, dim):
        raise IndexCorrupt(path, f"{x.shape} {x.dtype} vectors for {n} delta chunks of dim {dim}")
    return np.ascontiguousarray(x)
