"""The lesion table of ``rim_lesion_detection``: its summary, each lesion's position, and its link to the labelmap.

The table's columns are those of the bundle's description (``capability.json``, output ``lesions``): one row per
lesion with ``centroid_x, centroid_y, centroid_z`` in RAS mm, the coordinates Slicer's views use, so a row is a
place to jump to, and the call ``rim_positive``. In Slicer the table node keeps a node reference
(:data:`RIM_LABELS_REFERENCE`) to the rim labelmap loaded with it; clicking a row shows that labelmap and centres the
slice views on the lesion. ``slicer`` is imported inside the functions that need it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from QSMSlicerCommon import capability

#: Node reference role from the lesion table node to its rim labelmap node.
RIM_LABELS_REFERENCE = "rimLabels"
#: The lesion table's columns, in order, from the bundle's description.
TABLE_COLUMNS = capability.columns("rim_lesion_detection", "lesions")
#: The table's centroid columns (RAS mm).
CENTROID_COLUMNS = tuple(column for column in TABLE_COLUMNS if column.startswith("centroid_"))
#: The table's rim+ call (1 rim+, 0 rim−).
RIM_POSITIVE_COLUMN = "rim_positive"


def summarize_lesions(rim_positive: Sequence[str]) -> str:
    """One line for the log from the table's ``rim_positive`` column: how many lesions, how many rim+.

    >>> summarize_lesions(["1", "0", "True"])
    '3 lesion(s), 2 rim+'
    """
    positive = sum(str(value).strip().lower() in ("1", "true", "yes") for value in rim_positive)
    return f"{len(rim_positive)} lesion(s), {positive} rim+"


def read_lesion_table(csv_path: Path) -> tuple[Callable[[int, str], str], int]:
    """``(row, column name) → text`` and the row count of a lesion table CSV (outside Slicer, e.g. in tests).

    Raises:
        ValueError: the table lacks a column of the bundle's contract.
    """
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in (*CENTROID_COLUMNS, RIM_POSITIVE_COLUMN) if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"lesion table {str(csv_path)!r} has no {', '.join(missing)} column; "
                         "is it a rim bundle output?")
    return (lambda row, column: rows[row][column]), len(rows)


def lesion_centroid_ras(cell_text: Callable[[int, str], str], row: int) -> tuple[float, float, float]:
    """The RAS position (mm) of the lesion in ``row``.

    Args:
        cell_text: ``(row, column name) → text`` of the table.
        row: 0-based row (the clicked row of the table view).

    Raises:
        ValueError: a centroid cell is not a number (not a rim bundle table).
    """
    try:
        x, y, z = (float(cell_text(row, column)) for column in CENTROID_COLUMNS)
    except ValueError:
        raise ValueError(f"row {row} of the lesion table has no numeric {', '.join(CENTROID_COLUMNS)}") from None
    return x, y, z


def link_table_to_labels(table_node: object, labels_node: object) -> None:
    """Make the table node refer to the rim labelmap it was loaded with (saved with the scene)."""
    table_node.SetNodeReferenceID(RIM_LABELS_REFERENCE, labels_node.GetID())


def table_cell_text(table_node: object) -> Callable[[int, str], str]:
    """``(row, column name) → text`` of a ``vtkMRMLTableNode``."""

    def cell_text(row: int, column: str) -> str:
        index = table_node.GetColumnIndex(column)
        if index < 0:
            raise ValueError(f"table {table_node.GetName()!r} has no column {column!r}")
        return table_node.GetCellText(row, index)

    return cell_text


def table_column(table_node: object, column: str) -> list[str]:
    """Every cell of one column of a ``vtkMRMLTableNode``."""
    cell_text = table_cell_text(table_node)
    return [cell_text(row, column) for row in range(table_node.GetNumberOfRows())]


def jump_to_lesion(table_node: object, row: int) -> tuple[float, float, float]:
    """Show the table's rim labelmap and centre every slice view on the lesion of ``row``; returns its RAS."""
    import slicer

    ras = lesion_centroid_ras(table_cell_text(table_node), row)
    labels = table_node.GetNodeReference(RIM_LABELS_REFERENCE)
    if labels is not None:
        slicer.util.setSliceViewerLayers(label=labels)
    slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)
    return ras
