"""Stand-in for CTK's widgets: the ones our ``.ui`` files use, the message box ``slicer.util`` shows, and a
plain widget class for any other ``ctk.X`` (see ``qt.py``)."""

from __future__ import annotations

import qt


class ctkCollapsibleButton(qt.QWidget):  # noqa: N801
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text, self.collapsed = "", False


class ctkPathLineEdit(qt.QWidget):  # noqa: N801
    SIGNALS = ("currentPathChanged",)
    currentPath = qt._notifying("_path", "currentPathChanged", "")  # noqa: N815


class ctkMessageBox(qt.QMessageBox):  # noqa: N801
    pass


_GENERATED: dict[str, type] = {}


def __getattr__(name: str) -> type:
    if not name.startswith("ctk"):
        raise AttributeError(name)
    return _GENERATED.setdefault(name, type(name, (qt.QWidget,), {}))
