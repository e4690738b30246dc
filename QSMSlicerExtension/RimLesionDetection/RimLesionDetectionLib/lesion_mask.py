"""The lesion input of RimLesionDetection: a labelmap/scalar volume, or a segmentation exported to a labelmap.

A segmentation is exported on the QSM grid, one label per segment, so each segment is one lesion; a single
segment holding many lesions is split into 26-connected lesions by the bundle. ``slicer`` is imported inside.
"""

from __future__ import annotations

from pathlib import Path

from QSMSlicerCommon.slicer_nodes import temporary_nodes, write_volume


def write_lesion_mask(node: object, path: Path, *, reference: object) -> Path:
    """Write the lesion mask as NIfTI; a segmentation is first exported to a labelmap on ``reference``'s grid.

    Raises:
        RuntimeError: Slicer could not export the segmentation.
    """
    if not node.IsA("vtkMRMLSegmentationNode"):
        return write_volume(node, path)
    import slicer

    with temporary_nodes(slicer.mrmlScene):  # the labelmap and the nodes that come with it
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{node.GetName()}_labels")
        if not slicer.modules.segmentations.logic().ExportVisibleSegmentsToLabelmapNode(node, labelmap, reference):
            raise RuntimeError(f"could not export segmentation {node.GetName()!r} to a labelmap; "
                               "check that it has visible segments")
        return write_volume(labelmap, path)
