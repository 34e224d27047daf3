"""The local store's vector index: FAISS exact search, IVF past a size, and when to
patch the previous index rather than build a new one.

Ids are the chunks' stable int64 vector ids (``chunks.vid`` in meta.sqlite), so an
update removes and adds only the vectors of chunks that changed.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from .errors import IndexCorrupt
from .generations import FaissInfo, Manifest, Vanished
from .vectors import normalize

#: chunks at or above which a from-scratch build uses IVF instead of exact search
APPROX_THRESHOLD = 50_000
#: recall@10 (vs exact search) that nprobe is tuned for when an IVF index is trained
IVF_TARGET_RECALL = 0.99


def read_faiss(path: Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        if not path.exists():
            raise Vanished() from e
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "read error"
        raise IndexCorrupt(path, f"unreadable faiss index: {msg[-160:]}") from e


def check_faiss(path: Path, index: faiss.Index, m: Manifest) -> None:
    if index.d != m.dim:
        raise IndexCorrupt(path, f"dimension {index.d}, manifest says {m.dim}")
    if index.ntotal != m.chunks:
        raise IndexCorrupt(path, f"{index.ntotal} vectors, manifest says {m.chunks} chunks")
    expected = "ivf" if m.faiss.kind == "ivf" else "flat"
    if faiss_kind(index) != expected:
        raise IndexCorrupt(path, f"faiss index is not of kind {expected}")
    if expected == "ivf" and m.faiss.nprobe:
        index.nprobe = m.faiss.nprobe


def faiss_kind(index: faiss.Index) -> str | None:
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    if isinstance(index, faiss.IndexIDMap2):
        return "flat"
    return None


def faiss_ids(index: faiss.Index) -> np.ndarray:
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    inv = index.invlists
    parts = []
    for lst in range(index.nlist):
        size = inv.list_size(lst)
        if size:
            parts.append(np.array(faiss.rev_swig_ptr(inv.get_ids(lst), size), dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def nlist_for(n: int) -> int:
    # ≈ 4·sqrt(n), but k-means wants ≥ 39 points per centroid
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def tune_nprobe(index: faiss.IndexIVF, x: np.ndarray, target: float = IVF_TARGET_RECALL) -> int:
    """Smallest nprobe whose recall@10 vs exact search reaches ``target`` on perturbed data points.

    Queries are data points plus noise rather than the points themselves, so the
    trivial self-match does not inflate the estimate.
    """
    n, d = x.shape
    rng = np.random.default_rng(1)
    q = x[rng.choice(n, size=min(256, n), replace=False)]
    q = q + rng.normal(scale=0.5 / math.sqrt(d), size=q.shape).astype(np.float32)
    q = normalize(q, d, q.shape[0])
    k = min(10, n)
    _, truth = faiss.knn(q, x, k, metric=faiss.METRIC_INNER_PRODUCT)  # no copy of x
    nprobe = 1
    while True:
        index.nprobe = nprobe
        _, got = index.search(q, k)
        hits = sum(len(set(t) & set(g)) for t, g in zip(truth.tolist(), got.tolist(), strict=True))
        if hits / truth.size >= target or nprobe >= index.nlist:
            return nprobe
        nprobe = min(nprobe * 2, index.nlist)


def build_faiss(
    x: np.ndarray, ids: np.ndarray, dim: int, approx_threshold: int
) -> tuple[faiss.Index, FaissInfo]:
    n = x.shape[0]
    if n < max(approx_threshold, 1) or nlist_for(n) < 2:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if n:
            index.add_with_ids(x, ids)
        return index, FaissInfo("flat")
    nlist = nlist_for(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True  # centroids on the unit sphere suit inner product on unit vectors
    rng = np.random.default_rng(0)
    sample = x if n <= 64 * nlist else x[rng.choice(n, size=64 * nlist, replace=False)]
    index.train(sample)
    index.add_with_ids(x, ids)
    # margin: real queries ("query: …") sit farther from passages than the tuning probes,
    # and at this size extra lists cost microseconds
    nprobe = min(nlist, max(2 * tune_nprobe(index, x), 16))
    index.nprobe = nprobe
    return index, FaissInfo("ivf", nlist=nlist, nprobe=nprobe, trained_size=n)


def rebuild_reason(
    previous: FaissInfo | None, n: int, approx_threshold: int, *, full: bool
) -> str | None:
    """Why the next generation needs a new faiss index, or None to patch the previous one.

    A flat index becomes IVF once the corpus reaches ``approx_threshold``; an IVF index
    is retrained once it has grown 4× since its quantizer was trained (its lists would
    be unbalanced and nprobe mistuned).
    """
    if full or previous is None:
        return "full build"
    if previous.kind == "flat" and n >= approx_threshold and nlist_for(n) >= 2:
        return f"{n} chunks ≥ {approx_threshold}: switching to IVF"
    if previous.kind == "ivf" and n >= 4 * max(previous.trained_size, 1):
        return f"grown to {n} chunks since IVF training on {previous.trained_size}: retraining"
    return None
