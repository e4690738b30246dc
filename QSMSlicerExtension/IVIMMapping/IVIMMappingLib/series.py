"""The Slicer side of a DWI series: a 4-D volume node or a sequence of 3-D volumes, written as one 4-D NIfTI.

``slicer`` is imported inside the functions, so importing this file needs no Slicer.
"""

from __future__ import annotations

from pathlib import Path

from QSMSlicerCommon.slicer_nodes import ijk_to_ras, write_array, write_volume

from IVIMMappingLib.options import FRAME_LABELS_ATTRIBUTE, b_values_from_sequence_index, stack_frames


def _frame_nodes(sequence: object) -> list[object]:
    return [sequence.GetNthDataNode(i) for i in range(sequence.GetNumberOfDataNodes())]


def is_sequence(node: object) -> bool:
    """The node is a sequence (Slicer's Sequences), not a volume."""
    return bool(node.IsA("vtkMRMLSequenceNode"))


def write_series(node: object, path: Path) -> Path:
    """Write a DWI series as a 4-D NIfTI (last axis = b-values), on the grid of its first frame for a sequence."""
    if not is_sequence(node):
        return write_volume(node, path)
    import slicer

    frames = _frame_nodes(node)
    stacked = stack_frames([slicer.util.arrayFromVolume(f) for f in frames], node.GetName())
    return write_array(stacked, ijk_to_ras(frames[0]), path)


def series_b_value_labels(node: object) -> str | None:
    """b-values stored with the series: a MultiVolume's frame labels, or a sequence index named as b-values."""
    if is_sequence(node):
        values = [node.GetNthIndexValue(i) for i in range(node.GetNumberOfDataNodes())]
        return b_values_from_sequence_index(node.GetIndexName() or "", node.GetIndexUnit() or "", values)
    return node.GetAttribute(FRAME_LABELS_ATTRIBUTE)
