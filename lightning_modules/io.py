"""NIfTI input/output with affines, input validation with one-line user errors, and atomic writes.

Everything here reads or writes files; numerics live elsewhere.
"""

from __future__ import annotations

import os
import tempfile
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
        InputError: missing/unreadable file, wrong dimensionality, NaN or Inf values.
    """
    path = Path(path)
    if not str(path) or not path.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist; check the path")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as err:  # nibabel raises many types for broken files
        raise InputError(f"{what} file {str(path)!r} is not a readable NIfTI image ({err})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        while data.ndim > max(allowed) and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim not in allowed:
            want = " or ".join(f"{n}-D" for n in allowed)
            raise InputError(f"{what} file {str(path)!r} is {data.ndim}-D with shape {data.shape}; expected {want}")
    if not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{what} file {str(path)!r} contains {n_bad} NaN/Inf values; replace them (e.g. by 0)")
    return data, np.asarray(img.affine, dtype=np.float64), img.header


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


def save_nifti_atomic(
    data: np.ndarray, affine: np.ndarray, path: str | os.PathLike, *, header: nib.Nifti1Header | None = None,
    dtype: np.dtype | type = np.float32,
) -> Path:
    """Write a NIfTI image atomically: to a temporary file in the target folder, then rename.

    A reader never sees a half-written file, and an error leaves no file behind. The affine is written to
    both sform and qform exactly as given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), np.asarray(affine, dtype=np.float64), header=hdr)
    img.set_data_dtype(dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header["scl_slope"] = 1.0
    img.header["scl_inter"] = 0.0
    suffix = ".nii.gz" if path.name.endswith(".gz") else ".nii"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        nib.save(img, tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (e.g. a CSV table) atomically: temporary file in the target folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def reference_data_dir(*parts: str) -> Path:
    """A folder of the peer reference data: ``$QSM_SLICER_REFERENCE_DATA`` if set, else ``../shared/data`` beside
    the repository (never copied into it); ``parts`` are joined below it. The folder need not exist."""
    env = os.environ.get("QSM_SLICER_REFERENCE_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root.joinpath(*parts)
