"""Stand-in for PythonQt's ``qt`` module: widgets built from a ``.ui`` file, signals, a hand-fired timer, dialogs.

Slicer's real Python layer (``slicer.util``, ``parameterNodeWrapper``) runs on top of this, so the widgets have
what that code and ours touch: Qt properties as attributes, dynamic properties (``SlicerParameterName``),
``findChildren``, old-style ``connect("clicked(bool)", slot)`` and new-style ``widget.valueChanged.connect``.
Setting a property that Qt would signal on (``value``, ``text``, ``currentIndex``...) emits the signal, when the
value changes, like Qt. Any other ``qt.X`` is a plain widget class (``QCheckBox``, ``QSlider`` are only compared
with ``type(widget) ==`` by the parameter-node connectors). Dialogs record their text in :data:`dialogs` and
answer :data:`dialog_answers` (a test sets what the user clicks).
"""

from __future__ import annotations

import inspect
import xml.etree.ElementTree as ET
from pathlib import Path


class Signal:
    """A Qt signal: slots called with as many of the emitted arguments as each takes (like PythonQt)."""

    def __init__(self) -> None:
        self.slots: list = []

    def connect(self, slot) -> None:
        self.slots.append(slot)

    def disconnect(self, slot) -> None:
        self.slots.remove(slot)

    def emit(self, *args) -> None:
        for slot in list(self.slots):
            try:
                parameters = list(inspect.signature(slot).parameters.values())
            except (TypeError, ValueError):
                slot(*args)
                continue
            if any(p.kind is p.VAR_POSITIONAL for p in parameters):
                slot(*args)
            else:
                slot(*args[: len([p for p in parameters if p.default is p.empty])])


def _notifying(attribute: str, signal: str, default):
    """A Qt property that emits ``signal(new value)`` when it changes."""

    def get(self):
        return self.__dict__.get(attribute, default)

    def set(self, value):
        if self.__dict__.get(attribute, default) != value:
            self.__dict__[attribute] = value
            getattr(self, signal).emit(value)

    return property(get, set)


class QObject:
    SIGNALS: tuple[str, ...] = ()

    def __init__(self, parent=None) -> None:
        self._parent = None
        self._children: list[QObject] = []
        self._properties: dict[str, object] = {}
        self.name = ""
        for signal in type(self).all_signals():
            setattr(self, signal, Signal())
        if isinstance(parent, QObject):
            self.setParent(parent)

    @classmethod
    def all_signals(cls) -> set[str]:
        return {s for klass in cls.__mro__ for s in getattr(klass, "SIGNALS", ())}

    def setParent(self, parent) -> None:  # noqa: N802
        self._parent = parent
        parent._children.append(self)

    def parent(self):
        return self._parent

    def children(self) -> list:
        return list(self._children)

    def findChildren(self, class_or_type) -> list:  # noqa: N802
        found = []
        for child in self._children:
            if isinstance(child, class_or_type):
                found.append(child)
            found.extend(child.findChildren(class_or_type))
        return found

    def property(self, name: str):
        return self._properties.get(name)

    def setProperty(self, name: str, value) -> None:  # noqa: N802
        self._properties[name] = value

    def className(self) -> str:  # noqa: N802
        return type(self).__name__

    def connect(self, signature: str, slot) -> None:
        """PythonQt's ``object.connect("signal(args)", slot)``."""
        getattr(self, signature.split("(")[0]).connect(slot)

    def deleteLater(self) -> None:  # noqa: N802
        pass


class QWidget(QObject):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.enabled, self.visible, self.toolTip = True, True, ""
        self._layout = None

    def isWidgetType(self) -> bool:  # noqa: N802
        return True

    def setLayout(self, layout) -> None:  # noqa: N802
        self._layout = layout
        layout.owner = self

    def layout(self):
        return self._layout

    def show(self) -> None:
        self.visible = True


class QLayout:
    """A layout: widgets added to it become children of the widget it lays out."""

    def __init__(self, parent=None) -> None:
        self.owner = None
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def addWidget(self, widget, *args) -> None:  # noqa: N802
        if self.owner is not None:
            widget.setParent(self.owner)

    def addRow(self, *items) -> None:  # noqa: N802
        for item in items:
            if isinstance(item, QWidget):
                self.addWidget(item)


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    pass


class QSettings:
    """Empty application settings: every ``slicer.util.settingsValue`` gets its default."""

    def contains(self, key: str) -> bool:
        return False

    def value(self, key: str, default=None):
        return default


class QLabel(QWidget):
    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self.text = text


class QPushButton(QWidget):
    SIGNALS = ("clicked",)

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self.text = text

    def click(self) -> None:
        if self.enabled:
            self.clicked.emit(False)


class QLineEdit(QWidget):
    SIGNALS = ("textChanged",)
    text = _notifying("_text", "textChanged", "")


class QPlainTextEdit(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.lines: list[str] = []

    def appendPlainText(self, text: str) -> None:  # noqa: N802
        self.lines.append(text)

    def clear(self) -> None:
        self.lines.clear()


class QProgressBar(QWidget):
    SIGNALS = ("valueChanged",)
    value = _notifying("_value", "valueChanged", 0)


class QDoubleSpinBox(QWidget):
    SIGNALS = ("valueChanged",)
    value = _notifying("_value", "valueChanged", 0.0)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.minimum, self.maximum, self.decimals, self.singleStep = 0.0, 99.99, 2, 1.0


class QComboBox(QWidget):
    SIGNALS = ("currentIndexChanged",)
    currentIndex = _notifying("_index", "currentIndexChanged", -1)  # noqa: N815

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.items: list[str] = []

    def clear(self) -> None:
        self.items.clear()
        self.currentIndex = -1

    def addItem(self, text: str) -> None:  # noqa: N802
        self.items.append(text)
        if self.currentIndex < 0:
            self.currentIndex = 0

    @property
    def currentText(self) -> str:  # noqa: N802
        return self.items[self.currentIndex] if self.currentIndex >= 0 else ""


class QTimer(QObject):
    """The panel's polling timer; a test calls :meth:`fire` where Qt's event loop would."""

    SIGNALS = ("timeout",)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.interval, self.active = 0, False

    def setInterval(self, milliseconds: int) -> None:  # noqa: N802
        self.interval = milliseconds

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def fire(self) -> None:
        self.timeout.emit()


#: Texts of the dialogs shown so far (``ctkMessageBox``/``QMessageBox``), and the button each one answers.
dialogs: list[str] = []
dialog_answers: list[int] = []


class QMessageBox(QWidget):
    NoButton, Ok, Cancel, Yes, No, Retry, Close = 0, 0x400, 0x400000, 0x4000, 0x10000, 0x80000, 0x200000
    Information, Warning, Critical, Question = 1, 2, 3, 4

    def __init__(self, parent=None) -> None:
        super().__init__(parent if isinstance(parent, QObject) else None)
        self.text, self.standardButtons, self.detailedText, self.windowTitle = "", self.Ok, "", ""

    def exec_(self) -> int:
        dialogs.append(self.text)
        return dialog_answers.pop(0) if dialog_answers else self.Ok


class Qt:
    WaitCursor = 3


class QApplication:
    @staticmethod
    def setOverrideCursor(cursor) -> None:  # noqa: N802
        pass

    @staticmethod
    def restoreOverrideCursor() -> None:  # noqa: N802
        pass


class QIcon:
    def __init__(self, path: str = "") -> None:
        self.path = path


class QColor:
    def __init__(self, *args) -> None:
        self.args = args


class QFile:
    ReadOnly = 1

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def open(self, mode: int) -> bool:
        return self.exists()


_LAYOUTS = ("QVBoxLayout", "QHBoxLayout", "QFormLayout", "QGridLayout")


def _value(element: ET.Element):
    """A ``<property>`` value of a .ui file as Python."""
    kind = element[0]
    if kind.tag == "bool":
        return kind.text == "true"
    if kind.tag == "number":
        return int(kind.text)
    if kind.tag == "double":
        return float(kind.text)
    if kind.tag == "stringlist":
        return [s.text or "" for s in kind.iter("string")]
    if kind.tag in ("string", "cstring", "enum", "set"):
        return kind.text or ""
    return None


class QUiLoader:
    """Builds the widget tree of a ``.ui`` file from the widget classes of ``qt``, ``ctk`` and ``slicer``, sets
    its properties and makes its ``<connections>``."""

    def load(self, qfile: QFile, parent=None):
        root = ET.parse(qfile.path).getroot()
        built: dict[str, QObject] = {}
        top = self._build(root.find("widget"), None, built)
        for connection in root.iter("connection"):
            sender, receiver = built[connection.findtext("sender")], built[connection.findtext("receiver")]
            sender.connect(connection.findtext("signal"), getattr(receiver, connection.findtext("slot").split("(")[0]))
        return top

    def _build(self, element: ET.Element, parent, built: dict):
        widget = widget_class(element.get("class"))(parent=parent)
        widget.name = element.get("name")
        built[widget.name] = widget
        for child in element:
            if child.tag == "property":
                value = _value(child)
                if child.get("stdset") == "0":
                    widget.setProperty(child.get("name"), value)
                elif child.get("name") not in ("geometry", "sizePolicy", "minimumSize", "maximumSize"):
                    setattr(widget, child.get("name"), value)
            elif child.tag in ("widget", "layout", "item"):
                self._build_children(child, widget, built)
        return widget

    def _build_children(self, element: ET.Element, widget, built: dict) -> None:
        if element.tag == "widget":
            self._build(element, widget, built)
            return
        for child in element:
            if child.tag in ("widget", "layout", "item"):
                self._build_children(child, widget, built)


def widget_class(name: str) -> type:
    """The stand-in class of a widget named in a .ui file (``QLabel``, ``ctkCollapsibleButton``, ``qMRML...``)."""
    import ctk
    import slicer

    for namespace in (globals(), vars(ctk), vars(slicer)):
        if name in namespace:
            return namespace[name]
    raise KeyError(f"no stand-in for widget class {name!r}")


_GENERATED: dict[str, type] = {}


def __getattr__(name: str) -> type:
    """Any other Qt class (``QCheckBox``, ``QSlider``...): a plain widget class, the same one on every access."""
    if not name.startswith("Q"):
        raise AttributeError(name)
    return _GENERATED.setdefault(name, type(name, (QWidget,), {}))
