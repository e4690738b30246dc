"""Stand-in for ``qt.QTimer``: the test fires the timer by hand (``fire()``)."""

from __future__ import annotations


class QTimer:
    def __init__(self) -> None:
        self.interval = 0
        self.active = False
        self.slots: list = []

    def setInterval(self, milliseconds: int) -> None:  # noqa: N802
        self.interval = milliseconds

    def connect(self, signal: str, slot) -> None:
        assert signal == "timeout()", signal
        self.slots.append(slot)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def fire(self) -> None:
        for slot in self.slots:
            slot()
