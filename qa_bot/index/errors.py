"""The index errors every store raises; ``str(e)`` is one line for the user.

The CLI prints that line and exits 2; a long-running reader logs it and keeps
answering from the version it has. ``index_dir``/``path`` arguments name where the
problem is: a folder or file for the local store, a URI or collection for others.
"""

from __future__ import annotations

from pathlib import Path

BUILD_HINT = "run `qa-bot index build`"


class IndexProblem(Exception):
    """Base of the index errors; ``str(e)`` is a one-line message for the user."""


class IndexMissing(IndexProblem):
    def __init__(self, index_dir: Path | str) -> None:
        self.index_dir = index_dir
        super().__init__(f"no index in {index_dir}: {BUILD_HINT}")


class IndexCorrupt(IndexProblem):
    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"index file {path} is damaged ({reason}): {BUILD_HINT}")


class IndexOutdated(IndexProblem):
    def __init__(self, index_dir: Path | str) -> None:
        super().__init__(
            f"the index in {index_dir} was written by another version of qa-bot: "
            "run `qa-bot index update` (cached vectors are reused)"
        )


class ModelMismatch(IndexProblem):
    def __init__(
        self, index_dir: Path | str, index_model: str, index_dim: int, model: str | None, dim: int | None
    ) -> None:
        self.index_model, self.index_dim, self.model, self.dim = index_model, index_dim, model, dim
        current = f"{model if model is not None else index_model} (dim {dim if dim is not None else index_dim})"
        super().__init__(
            f"index in {index_dir} was built with model {index_model} (dim {index_dim}), "
            f"the current model is {current}: rebuild with `qa-bot index build`"
        )


class IndexBusy(IndexProblem):
    def __init__(self, lock_path: Path | str, timeout: float) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another index update is running (lock {lock_path} held for more than {timeout:g}s); "
            "try again when it has finished"
        )


class StorageProblem(IndexProblem):
    """The disk refused a write or read (full, read-only, I/O error): nothing is damaged."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot use {path}: {reason}; the published index keeps answering")


class ShrinkRefused(IndexProblem):
    """The update would publish far fewer articles than the published index holds."""

    def __init__(self, before: int, after: int, max_fraction: float) -> None:
        self.before, self.after, self.max_fraction = before, after, max_fraction
        super().__init__(
            f"refusing to publish: the corpus now yields {after} articles, the published index "
            f"has {before} (more than {max_fraction:.0%} fewer, QA_BOT_MAX_SHRINK_FRACTION); "
            "the published index keeps answering. Fix the posts, or pass --allow-shrink "
            "to remove them on purpose"
        )


class StaleChanges(IndexProblem):
    """A change set was computed against a version that is no longer the published one
    (another writer published in between): compute it again."""

    def __init__(self, base: str | None, published: str | None) -> None:
        self.base, self.published = base, published
        super().__init__(
            f"the index changed during this update (computed against {base or 'no index'}, "
            f"now {published or 'no index'}): run the update again"
        )


class StoreUnavailable(IndexProblem):
    """The configured store cannot be used by this installation (``QA_BOT_STORE``)."""
