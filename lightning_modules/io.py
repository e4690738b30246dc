"""NIfTI input/output with affines, input validation with one-line user errors, and atomic writes.

Everything here reads or writes files; numerics live elsewhere.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np


class InputError(ValueError):
    """A problem with the user's input, reported as one sentence naming the file, the problem and the fix."""


def nifti_stem(path: str | os.PathLike) -> str:
    """File name without ``.nii`` / ``.nii.gz`` (the ``stem`` of DESIGN.md's output names).

    >>> nifti_stem("/data/sub-01_field.nii.gz")
    'sub-01_field'
    """
    name = Path(path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def _open_nifti(
    path: str | os.PathLike, *, what: str, ndim: int | tuple[int, ...] | None
) -> tuple[nib.Nifti1Image, tuple[int, ...], np.ndarray]:
    """The image (data not read yet), its shape with trailing singleton axes beyond ``ndim`` dropped, and its
    affine, after the checks that need no voxel data (see :func:`load_nifti`)."""
    path = Path(path)
    if str(path) and path.is_dir():
        raise InputError(f"{what} file {str(path)!r} is a folder, not a file; give the NIfTI file inside it")
    if not str(path) or not path.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist; check the path")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for broken files
        raise InputError(f"{what} file {str(path)!r} is not a readable NIfTI image ({err})") from None
    affine = np.asarray(img.affine, dtype=np.float64)
    check_affine(affine, path=path, what=what)
    shape = tuple(int(n) for n in img.shape)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        while len(shape) > max(allowed) and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) not in allowed:
            want = " or ".join(f"{n}-D" for n in allowed)
            raise InputError(f"{what} file {str(path)!r} is {len(shape)}-D with shape {shape}; expected {want}")
    return img, shape, affine


def read_nifti_header(
    path: str | os.PathLike, *, what: str = "image", ndim: int | tuple[int, ...] | None = None
) -> tuple[tuple[int, ...], np.ndarray]:
    """A NIfTI file's shape (trailing singleton axes beyond ``ndim`` dropped) and affine, checked as
    :func:`load_nifti` checks them but without reading the voxel data (to validate a batch up front).

    Raises:
        InputError: missing file, folder, unreadable header, degenerate affine, wrong dimensionality.
    """
    _, shape, affine = _open_nifti(path, what=what, ndim=ndim)
    return shape, affine


def load_nifti(
    path: str | os.PathLike, *, what: str = "image", ndim: int | tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Load a NIfTI image as float64 data, its 4×4 affine and header, checking what users get wrong.

    Args:
        path: file to read.
        what: what the file is, used in error messages (e.g. ``"field map"``).
        ndim: allowed number of dimensions (trailing singleton axes beyond it are squeezed).

    Returns:
        ``(data, affine, header)``; data axis order is the file's voxel order (i, j, k[, t]).

    Raises:
        InputError: missing/unreadable file, a folder given as the file, a degenerate affine (e.g. all-zero sform
            and no qform), wrong dimensionality, NaN or Inf values.
    """
    img, shape, affine = _open_nifti(path, what=what, ndim=ndim)
    try:
        data = np.asarray(img.dataobj, dtype=np.float64).reshape(shape)
    except Exception as err:  # truncated or corrupt voxel data
        raise InputError(f"{what} file {str(path)!r} is not a readable NIfTI image ({err})") from None
    if not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{what} file {str(path)!r} contains {n_bad} NaN/Inf values; replace them (e.g. by 0)")
    return data, affine, img.header


def check_affine(affine: np.ndarray, *, path: str | os.PathLike, what: str) -> None:
    """Raise :class:`InputError` unless the voxel-to-world affine is finite and invertible (voxel axes that span
    3-D space), as every output keeps it and the B0 direction is read from it."""
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    finite = bool(np.all(np.isfinite(affine)))
    sizes = np.linalg.norm(linear, axis=0) if finite else np.zeros(3)
    if not finite or np.any(sizes == 0) or abs(np.linalg.det(linear / sizes)) < 1e-6:
        raise InputError(f"{what} file {str(path)!r} has a degenerate affine (voxel axes that are zero, parallel or "
                         f"not finite, e.g. an all-zero sform and no qform); fix its header's sform/qform")


def check_same_grid(
    shape_a: tuple[int, ...], affine_a: np.ndarray, shape_b: tuple[int, ...], affine_b: np.ndarray, *,
    path_b: str | os.PathLike, what_b: str, ref: str, atol_mm: float = 1e-3
) -> None:
    """Raise :class:`InputError` unless image b has the spatial shape and affine of the reference image a."""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        raise InputError(
            f"{what_b} file {str(path_b)!r} has shape {tuple(shape_b[:3])} but the {ref} has {tuple(shape_a[:3])}; "
            f"resample it to the {ref}'s grid"
        )
    if not np.allclose(affine_a, affine_b, atol=atol_mm):
        raise InputError(
            f"{what_b} file {str(path_b)!r} has a different affine (position/orientation) from the {ref}; "
            f"resample it to the {ref}'s grid"
        )


def voxel_sizes_mm(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes (mm) along the three array axes: column norms of the affine's 3×3 part."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


#: Temporary files of atomic writes in progress, removed by :func:`remove_pending_temp_files` when a run is
#: interrupted (a signal can arrive between creating a temporary file and the ``try`` that would remove it).
_PENDING_TEMP_FILES: set[str] = set()


def remove_pending_temp_files() -> None:
    """Remove the temporary files of atomic writes that did not finish (called when a run is interrupted)."""
    for tmp in list(_PENDING_TEMP_FILES):
        Path(tmp).unlink(missing_ok=True)
        _PENDING_TEMP_FILES.discard(tmp)


def _temp_path(path: Path, suffix: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    _PENDING_TEMP_FILES.add(tmp)
    return tmp


def _nifti_to_temp(data: np.ndarray, affine: np.ndarray, path: Path, header: nib.Nifti1Header | None,
                   dtype: np.dtype | type) -> str:
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), np.asarray(affine, dtype=np.float64), header=hdr)
    img.set_data_dtype(dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header["scl_slope"] = 1.0
    img.header["scl_inter"] = 0.0
    tmp = _temp_path(path, ".tmp.nii.gz" if path.name.endswith(".gz") else ".tmp.nii")
    try:
        nib.save(img, tmp)
        os.chmod(tmp, _umask_mode())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _text_to_temp(text: str, path: Path) -> str:
    tmp = _temp_path(path, ".tmp")
    try:
        Path(tmp).write_text(text, encoding="utf-8")
        os.chmod(tmp, _umask_mode())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _discard(tmp: str) -> None:
    Path(tmp).unlink(missing_ok=True)
    _PENDING_TEMP_FILES.discard(tmp)


def _rename_all(renames: list[tuple[str, Path]]) -> None:
    """Rename temporary files onto their targets with SIGINT/SIGTERM held back, so a set is never half renamed."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    held = hasattr(signal, "pthread_sigmask")
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked) if held else None
    try:
        for tmp, path in renames:
            os.replace(tmp, path)
            _PENDING_TEMP_FILES.discard(tmp)
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def save_nifti_atomic(
    data: np.ndarray, affine: np.ndarray, path: str | os.PathLike, *, header: nib.Nifti1Header | None = None,
    dtype: np.dtype | type = np.float32,
) -> Path:
    """Write a NIfTI image atomically: to a temporary file in the target folder, then rename.

    A reader never sees a half-written file, and an error leaves no file behind. The affine is written to
    both sform and qform exactly as given.
    """
    path = Path(path)
    _rename_all([(_nifti_to_temp(data, affine, path, header, dtype), path)])
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (e.g. a CSV table) atomically: temporary file in the target folder, then rename."""
    path = Path(path)
    _rename_all([(_text_to_temp(text, path), path)])
    return path


class OutputSet:
    """The outputs of one case, written to temporary files and renamed together only when all are written.

    Use through :func:`atomic_output_set`; ``save_nifti`` and ``write_text`` take the arguments of
    :func:`save_nifti_atomic` and :func:`write_text_atomic`.
    """

    def __init__(self) -> None:
        self._renames: list[tuple[str, Path]] = []

    def save_nifti(self, data: np.ndarray, affine: np.ndarray, path: str | os.PathLike, *,
                   header: nib.Nifti1Header | None = None, dtype: np.dtype | type = np.float32) -> Path:
        path = Path(path)
        self._renames.append((_nifti_to_temp(data, affine, path, header, dtype), path))
        return path

    def write_text(self, text: str, path: str | os.PathLike) -> Path:
        path = Path(path)
        self._renames.append((_text_to_temp(text, path), path))
        return path

    @property
    def paths(self) -> list[Path]:
        return [path for _, path in self._renames]


@contextmanager
def atomic_output_set() -> Iterator[OutputSet]:
    """Write several outputs as one set: either all appear (renamed together at the end) or none.

    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_output_set() as outputs:
    ...     _ = outputs.write_text("a", folder / "a.txt")
    ...     _ = outputs.write_text("b", folder / "b.txt")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.txt']
    """
    outputs = OutputSet()
    try:
        yield outputs
    except BaseException:
        for tmp, _ in outputs._renames:
            _discard(tmp)
        raise
    _rename_all(outputs._renames)


def reference_data_dir(*parts: str) -> Path:
    """A folder of the peer reference data: ``$QSM_SLICER_REFERENCE_DATA`` if set, else ``../shared/data`` beside
    the repository (never copied into it); ``parts`` are joined below it. The folder need not exist."""
    env = os.environ.get("QSM_SLICER_REFERENCE_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root.joinpath(*parts)
