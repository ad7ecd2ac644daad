"""Name -> class registries for the pluggable families (tasks, positional encodings).

Both families register the same way: a module in the family's package defines a class with a
``name`` and decorates it with ``@REGISTRY.register``; :meth:`Registry.discover` imports every
module of the package, so adding one is one module plus one ``conf/<group>/<name>.yaml``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._classes: dict[str, T] = {}
        self._discovered = False

    def register(self, cls: T) -> T:
        name = getattr(cls, "name", None)
        if not name:
            raise ValueError(f"{cls.__name__} has no name")
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"two {self.kind}s named {name!r}: {self._classes[name].__name__}, {cls.__name__}")
        self._classes[name] = cls
        return cls

    def discover(self) -> None:
        """Import every module of the family's package (each registers its classes)."""
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def __getitem__(self, name: str) -> T:
        self.discover()
        if name not in self._classes:
            raise KeyError(name)
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(sorted(self._classes))

    def __len__(self) -> int:
        self.discover()
        return len(self._classes)

    def names(self) -> list[str]:
        return list(self)
