"""Assertions about a package's public surface, shared by the package tests."""

from __future__ import annotations

from types import ModuleType


def assert_all_is_exact(package: ModuleType) -> None:
    """``from package import *`` gives exactly ``__all__``, sorted, every name bound."""
    namespace: dict = {}
    exec(f"from {package.__name__} import *", namespace)  # what `import *` users get
    exported = {k for k in namespace if not k.startswith("__")}
    assert exported == set(package.__all__)
    assert package.__all__ == sorted(package.__all__)
    assert all(getattr(package, name) is not None for name in package.__all__)
