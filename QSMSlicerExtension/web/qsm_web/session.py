"""One browser session: its own Slicer scene and folder, and the four modules' Logic classes running on them.

Everything a run does is the modules' own code: ``<Module>Logic.start`` (required inputs, staging the nodes to
NIfTI, the bundle as a child process in its own temporary workspace), ``BundleJob.poll`` / ``cancel`` (progress,
cancel of the whole process group, workspace removed) and ``<Module>Logic.loadResults`` (output nodes with the
panels' colour tables and windows, the lesion table linked to the rim labelmap), and for SPIO
``SPIOQuantificationLogic.startTubes`` / ``loadTubes`` (the panel's "Bench tubes" reading of a map) and
``startObjects`` / ``loadObjects`` (its "Objects" report of the last map). This file only
turns uploaded files into nodes, keeps a copy of each run's output files for download, and summarises the scene as
data.
"""

from __future__ import annotations

import importlib
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from qsm_web import slicer_layer
from qsm_web.pages import Page, Upload, pages

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: The SPIO page's lumen labelmap, uploaded for the "Bench tubes" reading (not a parameter of the module's node).
TUBE_LUMENS = Upload("tube_lumens", "Tube lumens (labelmap on the map's grid: 0 outside, 1 … n per tube)", "labelmap")


def node_stem(file_name: str) -> str:
    """The node name for an uploaded file: its name without ``.nii``/``.nii.gz``, made safe."""
    name = Path(file_name).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "input"


def table_rows(table) -> list[dict]:
    """A table node as rows of column → text (every column); none for ``None``."""
    if table is None:
        return []
    vtk_table = table.GetTable()
    columns = [vtk_table.GetColumn(c).GetName() for c in range(vtk_table.GetNumberOfColumns())]
    return [{column: vtk_table.GetValue(row, c).ToString() for c, column in enumerate(columns)}
            for row in range(vtk_table.GetNumberOfRows())]


def _number(label: str, value) -> float | None:
    """A number typed on the page (text), ``None`` when empty; ``ValueError`` with one line otherwise."""
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{label}: {value!r} is not a number") from None
    if not number >= 0:
        raise ValueError(f"{label}: {value!r} must be zero or more")
    return number


class Session:
    """The scene of one trame-slicer :class:`SlicerApp` with the modules' Logic classes on it.

    Args:
        slicer_app: trame-slicer's application (its scene is the one the browser's views render).
        bundle_python: Python with the bundles' dependencies (the project's ``.venv``); runs every bundle.
        root: the session's folder (default: a new temporary folder, removed by :meth:`close`).
    """

    def __init__(self, slicer_app, *, bundle_python: str, root: str | Path | None = None) -> None:
        self.slicer_app = slicer_app
        self.slicer = slicer_layer.attach(slicer_app)
        self.bundle_python = bundle_python
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="qsm-web-"))
        self.runs = self.root / "runs"  # the runner's temporary workspaces
        for folder in (self.root / "uploads", self.root / "downloads", self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        self.pages: dict[str, Page] = {page.key: page for page in pages()}
        self._logics: dict[str, object] = {}
        self.job = None
        self.job_page: str | None = None
        self.job_kind: str | None = None  # "bundle", "tubes" or "objects" (the SPIO page's tube reading, report)
        self._main_input = None
        self.tube_lumens = None  # the SPIO page's uploaded lumen labelmap
        self.tube_table = None  # the table node of its last tube reading
        self.object_table = None  # the table node of its last object report
        self._spio_image = None  # the image node of the SPIO page's last map
        self._map_stem = "spio"  # the file name (no suffix) of the SPIO page's last map
        self.outputs: dict[str, dict[str, object]] = {}
        self.downloads: dict[str, list[str]] = {key: [] for key in self.pages}

    # -- the modules' Logic classes ------------------------------------------------------------------------------

    def logic(self, key: str):
        """The page's ``<Module>Logic``, with a runner on the project's Python and this session's folder."""
        if key not in self._logics:
            from QSMSlicerCommon.locations import locate_extension_paths
            from QSMSlicerCommon.runner import BundleRunner

            module_name = self.pages[key].module
            importlib.import_module(f"{module_name}Lib")  # as a module file does first
            logic_class = getattr(importlib.import_module(module_name), f"{module_name}Logic")
            runner = BundleRunner(logic_class.BUNDLE, python=self.bundle_python, paths=locate_extension_paths(),
                                  workspace_dir=self.runs)
            self._logics[key] = logic_class(runner)
        return self._logics[key]

    def parameters(self, key: str):
        """The page's parameter node (the module's ``@parameterNodeWrapper`` class)."""
        return self.logic(key).getParameterNode()

    def set_parameter(self, key: str, name: str, value) -> None:
        """Set a parameter from the page (numbers arrive as text); raises ``ValueError`` with one line."""
        parameters = self.parameters(key)
        current = getattr(parameters, name)
        try:
            setattr(parameters, name, float(value) if isinstance(current, float) else str(value))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: {value!r} is not allowed ({error})") from None

    # -- uploads -------------------------------------------------------------------------------------------------

    def upload(self, key: str, parameter: str, file_name: str, content: bytes) -> str:
        """Save an uploaded file, load it as a node (or keep a ``.bval`` as a path) into the page's parameter.

        Returns:
            The node name (or the ``.bval`` file name).

        Raises:
            ValueError: the file cannot be read as what the parameter needs (one line).
        """
        upload = next(u for u in self.pages[key].uploads if u.parameter == parameter)
        path = self._save_upload(key, parameter, file_name, content)
        parameters = self.parameters(key)
        if upload.kind == "bval":
            setattr(parameters, parameter, path)
            return path.name
        previous = getattr(parameters, parameter)
        node = self._load(upload, path)
        setattr(parameters, parameter, node)
        if previous is not None and previous is not node and self.slicer.mrmlScene.IsNodePresent(previous):
            self.slicer.mrmlScene.RemoveNode(previous)
        if upload is self.pages[key].uploads[0]:
            self.show(background=node)
        return node.GetName()

    def upload_lumens(self, file_name: str, content: bytes) -> str:
        """Save an uploaded lumen labelmap for the SPIO page's tube reading and load it; returns the node name."""
        path = self._save_upload("spio", TUBE_LUMENS.parameter, file_name, content)
        previous, self.tube_lumens = self.tube_lumens, self._load(TUBE_LUMENS, path)
        if previous is not None and self.slicer.mrmlScene.IsNodePresent(previous):
            self.slicer.mrmlScene.RemoveNode(previous)
        concentration = self.outputs.get("spio", {}).get("concentration")
        if concentration is not None:
            self.show(background=concentration, label=self.tube_lumens, label_opacity=0.5)
        return self.tube_lumens.GetName()

    def _save_upload(self, key: str, parameter: str, file_name: str, content: bytes) -> Path:
        """Write an uploaded file into ``uploads/<key>/<parameter>/`` (replacing the previous upload there)."""
        folder = self.root / "uploads" / key / parameter
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        path = folder / Path(file_name).name
        path.write_bytes(content)
        return path

    def _load(self, upload: Upload, path: Path):
        """A node from a NIfTI file: 3-D through Slicer's volumes logic, 4-D as a vector volume."""
        import nibabel

        name = node_stem(path.name)
        try:
            image = nibabel.load(str(path))
            shape = image.shape
        except Exception as error:  # nibabel raises several types for a file that is not NIfTI
            raise ValueError(f"{path.name} is not a NIfTI image ({type(error).__name__}); upload a .nii or .nii.gz "
                             "image") from None
        if upload.kind == "frames":
            if len(shape) != 4:
                raise ValueError(f"{path.name} has shape {shape}; {upload.label} must be a 4-D NIfTI")
            data = np.asarray(image.dataobj, dtype=np.float32).transpose(2, 1, 0, 3)  # (k, j, i, frame)
            node = self.slicer.util.addVolumeFromArray(np.ascontiguousarray(data), name=name,
                                                       nodeClassName="vtkMRMLVectorVolumeNode")
            node.SetIJKToRASMatrix(self.slicer.util.vtkMatrixFromArray(image.affine))
            return node
        if len(shape) != 3:
            raise ValueError(f"{path.name} has shape {shape}; {upload.label} must be a 3-D NIfTI")
        return self.slicer.util.loadVolume(str(path), {"name": name, "labelmap": upload.kind == "labelmap",
                                                       "show": False})

    # -- runs ----------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """A bundle process of this session runs."""
        return self.job is not None and self.job.result is None

    def start(self, key: str, on_line=None, on_progress=None) -> None:
        """Start the page's bundle (``<Module>Logic.start``); raises ``ValueError``/``RuntimeError`` with one line."""
        if self.running:
            raise RuntimeError("a run is in progress in this session; wait for it or cancel it")
        logic, parameters = self.logic(key), self.parameters(key)
        job = logic.start(parameters, onLine=on_line, onProgress=on_progress)
        if job is None:
            raise RuntimeError(logic.notStartedMessage())
        self.job, self.job_page, self.job_kind, self._main_input = job, key, "bundle", logic.mainInput(parameters)

    def start_tubes(self, margin_mm, inner_diameter_mm) -> None:
        """Read the tubes of the SPIO page's last map (``SPIOQuantificationLogic.startTubes``), polled like a run.

        Args:
            margin_mm: how far around each lumen its iron is summed (the panel's margin), mm.
            inner_diameter_mm: the tubes' known inner diameter, mm; empty or 0: the drawn lumens' areas.

        Raises:
            ValueError, RuntimeError: one line (no map yet, no lumens, a number that is not one).
        """
        if self.running:
            raise RuntimeError("a run is in progress in this session; wait for it or cancel it")
        concentration = self.outputs.get("spio", {}).get("concentration")
        if concentration is None:
            raise ValueError("run the SPIO map first: the tubes are read from its concentration map")
        if self.tube_lumens is None:
            raise ValueError("upload a labelmap of the tube lumens")
        margin, diameter = _number("margin (mm)", margin_mm), _number("inner diameter (mm)", inner_diameter_mm)
        if margin is None:
            raise ValueError("margin (mm): give a number, e.g. 1.2")
        self.job = self.logic("spio").startTubes(concentration, self.tube_lumens, marginMm=margin,
                                                 innerDiameterMm=diameter or None)
        self.job_page, self.job_kind, self._main_input = "spio", "tubes", concentration

    def start_objects(self) -> None:
        """Report the objects of the SPIO page's last map (``SPIOQuantificationLogic.startObjects``), polled like a
        run; raises ``ValueError``/``RuntimeError`` with one line (no map yet, a run in progress)."""
        if self.running:
            raise RuntimeError("a run is in progress in this session; wait for it or cancel it")
        concentration = self.outputs.get("spio", {}).get("concentration")
        if concentration is None or self._spio_image is None:
            raise ValueError("run the SPIO map first: the report reads its image and concentration map")
        self.job = self.logic("spio").startObjects(self._spio_image, concentration)
        self.job_page, self.job_kind, self._main_input = "spio", "objects", concentration

    def poll(self):
        """Feed the run's output to its callbacks; when it has ended, load its outputs (on success) and return
        its :class:`~QSMSlicerCommon.job.JobResult`; ``None`` while it runs or when nothing runs."""
        if self.job is None:
            return None
        result = self.job.poll()
        if result is None:
            return None
        job, key = self.job, self.job_page
        self.job = None
        if not result.succeeded:
            return result
        if self.job_kind == "tubes":  # named after the map's file: <image>_concentration_tubes.csv
            self._keep_for_download(key, result.outputs, names={"tubes": f"{self._map_stem}_tubes.csv"})
            self.tube_table = self.logic(key).loadTubes(job, self._main_input)
            return result
        if self.job_kind == "objects":  # <image>_concentration_objects.csv
            self._keep_for_download(key, result.outputs, names={"objects": f"{self._map_stem}_objects.csv"})
            self.object_table = self.logic(key).loadObjects(job, self._main_input)
            return result
        image = self._main_input
        self._keep_for_download(key, result.outputs)
        self.outputs[key] = self.logic(key).loadResults(job, self._main_input)
        if key == "spio":
            self.tube_table = self.object_table = None  # readings of the previous map
            self._spio_image = image
            self._map_stem = node_stem(result.outputs["concentration"].name)
        self._show_outputs(key)
        return result

    def cancel(self):
        """Stop the run: its whole process group ends and its workspace is removed (``BundleJob.cancel``)."""
        if self.job is None:
            return None
        result = self.job.cancel()
        self.job = None
        return result

    def _keep_for_download(self, key: str, outputs: dict[str, Path], names: dict[str, str] | None = None) -> None:
        """Copy the run's output files (before they are loaded and the workspace removed) into ``downloads/<key>``,
        as ``names[output]`` when given, else under their own names."""
        folder = self.root / "downloads" / key
        folder.mkdir(parents=True, exist_ok=True)
        for output, path in outputs.items():
            name = (names or {}).get(output, path.name)
            shutil.copy2(path, folder / name)
            if name not in self.downloads[key]:
                self.downloads[key].append(name)

    # -- views ---------------------------------------------------------------------------------------------------

    def show(self, *, background=None, label=None, label_opacity: float = 1.0) -> None:
        """Show volumes in the three slice views (Slicer's ``setSliceViewerLayers``) and fit the views to them."""
        layers = {name: node for name, node in (("background", background), ("label", label)) if node is not None}
        self.slicer.util.setSliceViewerLayers(**layers, labelOpacity=label_opacity, fit=True)
        for view in self.slicer_app.view_manager.get_slice_views():
            view.fit_view_to_content()
            view.schedule_render()

    def _show_outputs(self, key: str) -> None:
        outputs, page = self.outputs[key], self.pages[key]
        volumes = [node for node in outputs.values() if node.IsA("vtkMRMLVolumeNode")]
        labels = [node for node in volumes if node.IsA("vtkMRMLLabelMapVolumeNode")]
        scalars = [node for node in volumes if not node.IsA("vtkMRMLLabelMapVolumeNode")]
        background = getattr(self.parameters(key), page.background) if page.background else None
        self.show(background=background or (scalars[0] if scalars else None), label=labels[0] if labels else None)

    def lesion_rows(self, key: str = "rim") -> list[dict]:
        """The lesion table node of the page's last run, as rows of column → text (all the CSV's columns)."""
        return table_rows(self.outputs.get(key, {}).get("lesions"))

    def tube_rows(self) -> list[dict]:
        """The SPIO page's last tube reading, as rows of column → text."""
        return table_rows(self.tube_table)

    def object_rows(self) -> list[dict]:
        """The SPIO page's last object report, as rows of column → text."""
        return table_rows(self.object_table)

    def jump_to_lesion(self, row: int, key: str = "rim") -> tuple[float, float, float]:
        """Centre the slice views on a lesion (``RimLesionDetectionLogic.jumpToLesion``); returns its RAS (mm)."""
        return self._rendered(self.logic(key).jumpToLesion(self.outputs[key]["lesions"], int(row)))

    def jump_to_object(self, row: int) -> tuple[float, float, float]:
        """Centre the slice views on an object of the SPIO page's last object report, over its map
        (``SPIOQuantificationLogic.jumpToObject``); returns its RAS (mm)."""
        if self.object_table is None:
            raise ValueError("report the objects first")
        return self._rendered(self.logic("spio").jumpToObject(self.object_table, int(row)))

    def _rendered(self, ras: tuple[float, float, float]) -> tuple[float, float, float]:
        for view in self.slicer_app.view_manager.get_slice_views():
            view.schedule_render()
        return ras

    # -- the scene as data ---------------------------------------------------------------------------------------

    def summary(self) -> dict:
        """Volumes (shape, finite min/max/mean, colour table), tables, slice view centres (RAS mm), the running
        bundle process, the run workspaces on disk and the files offered for download."""
        scene = self.slicer.mrmlScene
        volumes = []
        for node in scene.GetNodesByClass("vtkMRMLVolumeNode"):
            if node.GetImageData() is None:
                continue
            array = self.slicer.util.arrayFromVolume(node)
            finite = array[np.isfinite(array)]
            display = node.GetDisplayNode()
            colour = display.GetColorNode() if display is not None else None
            volumes.append({"name": node.GetName(), "class": node.GetClassName(), "shape": list(array.shape),
                            "min": float(finite.min()) if finite.size else None,
                            "max": float(finite.max()) if finite.size else None,
                            "mean": float(finite.mean()) if finite.size else None,
                            "colour": colour.GetName() if colour is not None else None})
        tables = [{"name": node.GetName(), "rows": node.GetNumberOfRows()}
                  for node in scene.GetNodesByClass("vtkMRMLTableNode")]
        slices = {node.GetName(): [round(float(node.GetSliceToRAS().GetElement(i, 3)), 3) for i in range(3)]
                  for node in scene.GetNodesByClass("vtkMRMLSliceNode")}
        process = self.job.process.pid if self.job is not None else None
        return {"root": str(self.root), "volumes": volumes, "tables": tables, "slice_centres_ras": slices,
                "running_pid": process,
                "workspaces": sorted(p.name for p in self.runs.iterdir()), "downloads": self.downloads}

    def close(self) -> None:
        """Cancel a run and remove the session's folder."""
        self.cancel()
        shutil.rmtree(self.root, ignore_errors=True)
