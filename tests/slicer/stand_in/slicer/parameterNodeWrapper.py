# ruff: noqa: N999  (named like the Slicer module it stands in for)
"""Stand-in for ``slicer.parameterNodeWrapper``: typed attributes on the scripted module node, checked on set.

Values are kept per underlying node, so two wrappers of one node see the same values (like Slicer's).
"""

from __future__ import annotations

import typing
from pathlib import Path

import slicer


class Choice:
    def __init__(self, choices) -> None:
        self.choices = tuple(choices)

    def check(self, name: str, value) -> None:
        if value not in self.choices:
            raise ValueError(f"{name}: {value!r} is not one of {self.choices}")


class WithinRange:
    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum

    def check(self, name: str, value) -> None:
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{name}: {value!r} is outside [{self.minimum}, {self.maximum}]")


def _node_types(hint) -> tuple[type, ...] | None:
    members = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else (hint,)
    if all(isinstance(m, type) and issubclass(m, slicer.vtkMRMLNode) for m in members):
        return tuple(members)
    return None


def _default(hint):
    if _node_types(hint) is not None:
        return None
    return {str: "", float: 0.0, int: 0, bool: False, Path: Path()}[hint]


_VALUES: dict[str, dict[str, object]] = {}


def parameterNodeWrapper(cls):  # noqa: N802
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {}
    for name, hint in hints.items():
        checks = ()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *checks = typing.get_args(hint)
        default = cls.__dict__.get(name, _default(hint))
        fields[name] = (hint, tuple(checks), default)

    class Wrapper:
        __doc__ = cls.__doc__
        _fields = fields

        def __init__(self, node) -> None:
            object.__setattr__(self, "parameterNode", node)
            values = _VALUES.setdefault(node.GetID(), {})
            for field, (_, _, value) in fields.items():
                if field not in values:
                    setattr(self, field, value)

        def __getattr__(self, name: str):
            if name not in fields:
                raise AttributeError(name)
            return _VALUES[self.parameterNode.GetID()][name]

        def __setattr__(self, name: str, value) -> None:
            if name not in fields:
                raise AttributeError(f"{cls.__name__} has no parameter {name!r}")
            hint, checks, _ = fields[name]
            node_types = _node_types(hint)
            if node_types is not None and value is not None and not isinstance(value, node_types):
                raise TypeError(f"{name}: a {type(value).__name__} is not a {node_types}")
            for check in checks:
                check.check(name, value)
            _VALUES[self.parameterNode.GetID()][name] = value

        def connectGui(self, ui) -> object:  # noqa: N802
            return object()

        def disconnectGui(self, tag) -> None:  # noqa: N802
            pass

    Wrapper.__name__ = Wrapper.__qualname__ = cls.__name__
    return Wrapper
