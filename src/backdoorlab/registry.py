"""Registries by name for datasets, models, attacks and defenses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from backdoorlab.errors import UnknownComponentError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component: the object and the pydantic schema of its config section."""

    name: str
    obj: T
    config: type[BaseModel]
    summary: str


class Registry(Generic[T]):
    """A name -> component map filled by the `register` decorator."""

    def __init__(self, kind: str, default_config: type[BaseModel]) -> None:
        self.kind = kind
        self.default_config = default_config
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, config: type[BaseModel] | None = None) -> Callable[[T], T]:
        """Register a component under `name`; its config schema is `config` or `obj.Config`."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            schema = config or getattr(obj, "Config", None) or self.default_config
            if not (isinstance(schema, type) and issubclass(schema, self.default_config)):
                raise TypeError(
                    f"config of {self.kind} '{name}' must subclass {self.default_config.__name__}"
                )
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._entries[name] = Entry(name, obj, schema, doc[0] if doc else "")
            return obj

        return decorator

    def entry(self, name: str) -> Entry[T]:
        """The entry registered under `name`, or an error listing the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownComponentError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def get(self, name: str) -> T:
        """The component registered under `name`."""
        return self.entry(name).obj

    def validate(self, section: Any) -> BaseModel:
        """Validate a config section (a mapping with `name`) against its component's schema."""
        if isinstance(section, BaseModel):
            return section
        if not isinstance(section, dict):
            raise ValueError(f"must be a mapping with a 'name', got {type(section).__name__}")
        if "name" not in section:
            raise ValueError("missing 'name'")
        try:
            schema = self.entry(str(section["name"])).config
        except UnknownComponentError as exc:
            raise ValueError(str(exc)) from None
        return schema.model_validate(section)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries
