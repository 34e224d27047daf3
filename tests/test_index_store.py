"""Tests of the index package surface and the Store interface."""

from __future__ import annotations


def test_index_public_api_is_exactly_all() -> None:
    import qa_bot.index as package

    namespace: dict = {}
    exec("from qa_bot.index import *", namespace)  # what `import *` users get
    exported = {k for k in namespace if not k.startswith("__")}
    assert exported == set(package.__all__)
    assert package.__all__ == sorted(package.__all__)
    assert all(getattr(package, name) is not None for name in package.__all__)
