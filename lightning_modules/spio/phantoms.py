"""Random phantoms for the View Line simulator: base images (spin density) and 3-D SPIO objects.

Shapes follow della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §3.2 (metaballs and tori, 1–5 objects,
0.22–27.9 µg Fe/mm³), plus cylinders; base images are oblique slices of the MNI152 T1 template shipped in the
``nilearn`` wheel (random orientation and crop) or uniform agar-like disks. Geometry in mm on the grids of
:mod:`lightning_modules.spio.viewline`: the 3-D volume is (x, y, z) with the imaged plane at y = 0.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt, gaussian_filter

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.viewline import PIXEL_MM, VOXEL_3D_MM, pixel_centres_mm

SHAPES = ("metaball", "torus", "cylinder")
#: The families :func:`varied_concentration` adds to :data:`SHAPES` (issue 24, session 26).
EXTRA_SHAPES = ("capsule", "multilevel_metaball")


@functools.lru_cache(maxsize=1)
def grid_3d_mm() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coordinates (x, y, z) in mm of the 3-D simulation grid, broadcastable to (nx, ny, nz); y = 0 is the plane."""
    nx, nz = acq.VIEWLINE_MATRIX
    x = pixel_centres_mm(nx, PIXEL_MM[0])
    z = pixel_centres_mm(nz, PIXEL_MM[1])
    y = (torch.arange(acq.VIEWLINE_NY, dtype=torch.float32) - acq.VIEWLINE_NY // 2) * VOXEL_3D_MM[1]
    return x[:, None, None], y[None, :, None], z[None, None, :]


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def sphere(centre_mm: tuple[float, float, float], radius_mm: float) -> torch.Tensor:
    """Boolean ball (x, y, z) of radius ``radius_mm`` around ``centre_mm`` (x, y, z)."""
    x, y, z = grid_3d_mm()
    cx, cy, cz = centre_mm
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm**2


def cylinder(centre_mm: tuple[float, float, float], radius_mm: float, axis: np.ndarray) -> torch.Tensor:
    """Boolean infinite cylinder of radius ``radius_mm`` through ``centre_mm`` along the unit vector ``axis``."""
    x, y, z = grid_3d_mm()
    qx, qy, qz = x - centre_mm[0], y - centre_mm[1], z - centre_mm[2]
    along = qx * axis[0] + qy * axis[1] + qz * axis[2]
    return qx**2 + qy**2 + qz**2 - along**2 <= radius_mm**2


def torus(centre_mm: tuple[float, float, float], major_mm: float, minor_mm: float, normal: np.ndarray) -> torch.Tensor:
    """Boolean torus (ring radius ``major_mm``, tube radius ``minor_mm``) whose ring plane has unit ``normal``."""
    x, y, z = grid_3d_mm()
    qx, qy, qz = x - centre_mm[0], y - centre_mm[1], z - centre_mm[2]
    h = qx * normal[0] + qy * normal[1] + qz * normal[2]
    radial = torch.sqrt(torch.clamp(qx**2 + qy**2 + qz**2 - h**2, min=0.0))
    return (radial - major_mm) ** 2 + h**2 <= minor_mm**2


def metaball(centres_mm: np.ndarray, radii_mm: np.ndarray) -> torch.Tensor:
    """Boolean metaball: ``Σ r_i² / |p − c_i|² ≥ 1`` for ball centres (n, 3) and radii (n,) in mm."""
    x, y, z = grid_3d_mm()
    potential = torch.zeros(())
    for (cx, cy, cz), r in zip(centres_mm, radii_mm, strict=True):
        potential = potential + r**2 / ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 + 1e-6)
    return potential >= 1.0


def capsule(centre_mm: tuple[float, float, float], radius_mm: float, half_length_mm: float,
            axis: np.ndarray) -> torch.Tensor:
    """Boolean capsule (x, y, z): points within ``radius_mm`` of the segment ``centre ± half_length · axis``."""
    x, y, z = grid_3d_mm()
    qx, qy, qz = x - centre_mm[0], y - centre_mm[1], z - centre_mm[2]
    along = (qx * axis[0] + qy * axis[1] + qz * axis[2]).clamp(-half_length_mm, half_length_mm)
    return (qx - along * axis[0]) ** 2 + (qy - along * axis[1]) ** 2 + (qz - along * axis[2]) ** 2 <= radius_mm**2


def multilevel_metaball(centres_mm: np.ndarray, radii_mm: np.ndarray) -> list[torch.Tensor]:
    """The :func:`metaball` of these balls split into parts: part i holds the points where ball i contributes
    most to the potential (disjoint boolean masks (x, y, z), one per ball, some possibly empty)."""
    x, y, z = grid_3d_mm()
    terms = torch.stack([r**2 / ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 + 1e-6)
                         for (cx, cy, cz), r in zip(centres_mm, radii_mm, strict=True)])
    inside, owner = terms.sum(0) >= 1.0, terms.argmax(0)
    return [inside & (owner == i) for i in range(len(radii_mm))]


def log_uniform_level(rng: np.random.Generator) -> float:
    """A concentration log-uniform in the training range (µg Fe/mm³), one draw of ``rng``."""
    low, high = acq.SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_object(rng: np.random.Generator, centre_mm: tuple[float, float, float], shape: str) -> torch.Tensor:
    """One random object of ``shape`` (metaball, torus or cylinder) near ``centre_mm``, sizes of a few mm."""
    if shape == "metaball":
        n = int(rng.integers(1, 4))
        centres = np.asarray(centre_mm) + rng.normal(scale=1.5, size=(n, 3))
        return metaball(centres, rng.uniform(1.0, 3.5, size=n))
    if shape == "torus":
        return torus(centre_mm, rng.uniform(2.0, 5.0), rng.uniform(0.7, 1.8), _unit_vector(rng))
    axis = np.array([0.0, 1.0, 0.0]) if rng.random() < 0.7 else _unit_vector(rng)
    return cylinder(centre_mm, rng.uniform(1.0, 4.0), axis)


def agar_disk(*, radius_mm: float, centre_mm: tuple[float, float] = (0.0, 0.0), value: float = 1.0) -> torch.Tensor:
    """Uniform agar-like disk: spin density (x, z) equal to ``value`` inside the circle, 0 outside."""
    nx, nz = acq.VIEWLINE_MATRIX
    x = pixel_centres_mm(nx, PIXEL_MM[0])[:, None]
    z = pixel_centres_mm(nz, PIXEL_MM[1])[None, :]
    return value * (((x - centre_mm[0]) ** 2 + (z - centre_mm[1]) ** 2) <= radius_mm**2).float()


@functools.lru_cache(maxsize=1)
def _mni_template() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """MNI152 T1 template (1 mm) from the nilearn wheel as (1, 1, D, H, W), its affine and brain voxels (mm)."""
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=1)
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    volume = torch.from_numpy(data / data.max())[None, None]
    ijk = np.argwhere(data > 0.5 * data.max())
    brain_mm = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    return volume, np.asarray(img.affine), brain_mm


def mni_slice(rng: np.random.Generator, *, min_tissue_fraction: float = 0.4) -> torch.Tensor:
    """Spin density (x, z): an oblique MNI T1 slice in random orientation, position and crop (40–140 mm side).

    Resampled trilinearly onto the 128 × 128 image grid; retried until enough of the image is tissue.
    """
    volume, affine, brain_mm = _mni_template()
    nx, nz = acq.VIEWLINE_MATRIX
    inverse = np.linalg.inv(affine)
    for _ in range(20):
        basis, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        side_mm = rng.uniform(40.0, 140.0)
        centre = brain_mm[rng.integers(len(brain_mm))]
        u = (np.arange(nx) + 0.5) / nx - 0.5
        v = (np.arange(nz) + 0.5) / nz - 0.5
        points = centre + side_mm * (u[:, None, None] * basis[:, 0] + v[None, :, None] * basis[:, 1])
        ijk = points @ inverse[:3, :3].T + inverse[:3, 3]
        shape = np.array(volume.shape[2:], dtype=np.float64)
        normalised = 2.0 * (ijk + 0.5) / shape - 1.0  # grid_sample wants (W, H, D) order = (k, j, i)
        grid = torch.from_numpy(normalised[..., ::-1].copy()).float()[None, None]
        rho = torch.nn.functional.grid_sample(volume, grid, align_corners=False, padding_mode="zeros")[0, 0, 0]
        if float((rho > 0.2).float().mean()) >= min_tissue_fraction:
            return rho
    return rho


def random_base(rng: np.random.Generator) -> torch.Tensor:
    """Spin density (x, z): an MNI slice or an agar disk (radius 14–24 mm), with equal probability."""
    if rng.random() < 0.5:
        return mni_slice(rng)
    return agar_disk(radius_mm=rng.uniform(14.0, 24.0), centre_mm=tuple(rng.uniform(-3.0, 3.0, size=2)))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], *, smoothing_px: tuple[float, float],
                  amplitude: tuple[float, float]) -> np.ndarray:
    """Gaussian noise smoothed by a random width in ``smoothing_px`` (pixels), scaled to unit standard deviation,
    times a random amplitude in ``amplitude`` (draws: the noise, the width, the amplitude, in that order)."""
    noise = gaussian_filter(rng.normal(size=shape), rng.uniform(*smoothing_px))
    return noise / max(float(noise.std()), 1e-12) * rng.uniform(*amplitude)


def augment_base(spin_density: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The spin density (x, z) changed in intensity only, as real anatomy varies: a smooth multiplicative field
    ``exp(s·g)`` (g: unit-variance Gaussian-smoothed noise, smoothing 6–16 pixels, s 0.2–0.6) and a contrast power
    ``ρ^γ`` (γ 0.5–2), renormalised to the input's maximum; zero stays zero (issue 24, candidate L)."""
    peak = float(spin_density.max())
    if peak <= 0:
        return spin_density
    field = _smooth_noise(rng, tuple(spin_density.shape), smoothing_px=(6.0, 16.0), amplitude=(0.2, 0.6))
    changed = (spin_density / peak).clamp_min(0.0) ** float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    changed = changed * torch.as_tensor(np.exp(field), dtype=spin_density.dtype)
    return changed * (peak / max(float(changed.max()), 1e-12))


def rim_contrast(spin_density: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The spin density (x, z) as an image whose tissue edge is a bright thin rim around a dim interior, as in
    heads imaged with bright scalp fat or marrow and darker brain (issue 24, session 25: the generator variant's
    false iron sits on such a rim, a contrast no other training base has):

    - the tissue (ρ > 0.05 × max) within 1–3 mm of its edge becomes a rim at 0.8–1.2 × max;
    - the rest of the tissue keeps its structure at 0.15–0.5 of its intensity;
    - the result is smoothed by 0.5–1 pixel; zero stays zero outside the tissue.
    """
    rho = spin_density.double().numpy()
    peak = float(rho.max())
    if peak <= 0:
        return spin_density
    tissue = rho > 0.05 * peak
    depth_mm = distance_transform_edt(tissue, sampling=PIXEL_MM)
    rim = tissue & (depth_mm <= rng.uniform(1.0, 3.0))
    changed = np.where(rim, rng.uniform(0.8, 1.2) * peak, rho * rng.uniform(0.15, 0.5))
    changed = gaussian_filter(changed, rng.uniform(0.5, 1.0)) * tissue
    return torch.as_tensor(changed, dtype=spin_density.dtype)


def head_anatomy(spin_density: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The spin density (x, z) with what real head images have and the skull-stripped MNI template lacks (issue 24):

    - outside the tissue (ρ ≤ 0.05 × max), layers at random thicknesses: CSF (0.5–3 mm, 0.05–0.35 × max), skull
      (3–8 mm, 0–0.1 × max, sometimes a brighter diploë in its middle third) and scalp (3–9 mm, 0.6–1.4 × max),
      then air, smoothed by 0.5–1 pixel;
    - 0–6 vessels (curves 0.4–1.2 mm wide) through the tissue, bright (× 1.3–2, as after contrast) or dark
      (× 0.1–0.4, flow voids);
    - fine texture: ``exp(a·g)`` with g unit-variance noise smoothed by 0.6–2 pixels, a 0.02–0.1.

    Zero stays zero beyond the scalp and its smoothing; the result's maximum may exceed the input's (a bright
    scalp).
    """
    rho = spin_density.double().numpy()
    peak = float(rho.max())
    if peak <= 0:
        return spin_density
    shape = rho.shape
    tissue = rho > 0.05 * peak
    outside_mm = distance_transform_edt(~tissue, sampling=PIXEL_MM)
    csf, skull, scalp = rng.uniform(0.5, 3.0), rng.uniform(3.0, 8.0), rng.uniform(3.0, 9.0)
    layers = np.select([outside_mm <= 0, outside_mm < csf, outside_mm < csf + skull, outside_mm < csf + skull + scalp],
                       [0.0, rng.uniform(0.05, 0.35), rng.uniform(0.0, 0.1), rng.uniform(0.6, 1.4)], 0.0) * peak
    if rng.random() < 0.5:
        diploe = (outside_mm >= csf + skull / 3) & (outside_mm < csf + 2 * skull / 3)
        layers[diploe] = rng.uniform(0.3, 0.8) * peak
    rho = np.where(tissue, rho, gaussian_filter(layers, rng.uniform(0.5, 1.0)))
    inside = np.argwhere(tissue)
    if len(inside):
        for _ in range(int(rng.integers(0, 7))):
            ends = inside[rng.integers(len(inside), size=3)].astype(np.float64)  # a quadratic Bézier curve
            t = np.linspace(0.0, 1.0, 512)[:, None]
            curve = np.rint((1 - t) ** 2 * ends[0] + 2 * t * (1 - t) * ends[1] + t**2 * ends[2]).astype(int)
            off_curve = np.ones(shape, dtype=bool)
            off_curve[curve[:, 0], curve[:, 1]] = False
            distance_px = distance_transform_edt(off_curve)
            width_px = rng.uniform(0.4, 1.2) / PIXEL_MM[0]
            vessel = np.clip(width_px / 2 + 0.5 - distance_px, 0.0, 1.0) * tissue
            gain = rng.uniform(1.3, 2.0) if rng.random() < 0.5 else rng.uniform(0.1, 0.4)
            rho = rho * (1 + (gain - 1) * vessel)
    texture = _smooth_noise(rng, shape, smoothing_px=(0.6, 2.0), amplitude=(0.02, 0.1))
    return torch.as_tensor(rho * np.exp(texture), dtype=spin_density.dtype)


def _object_parts(rng: np.random.Generator, centre_mm: tuple[float, float, float], shape: str) -> list[torch.Tensor]:
    """One random object of ``shape`` (:data:`SHAPES` or :data:`EXTRA_SHAPES`) as its parts (disjoint boolean
    masks, each to get a level of its own): a **capsule** is an oblique finite rod (radius 0.8–3 mm, length
    2–14 mm); a **multi-level metaball** 2–4 fused balls of radius 1–3 mm, centres 0.6–1 sum of radii apart, one
    part per ball; the others are one part (:func:`random_object`)."""
    if shape == "capsule":
        return [capsule(centre_mm, rng.uniform(0.8, 3.0), rng.uniform(1.0, 7.0), _unit_vector(rng))]
    if shape == "multilevel_metaball":
        radii = rng.uniform(1.0, 3.0, size=int(rng.integers(2, 5)))
        centres = [np.asarray(centre_mm)]
        for a, b in zip(radii[:-1], radii[1:], strict=True):
            step = _unit_vector(rng) * np.array([1.0, 0.3, 1.0])  # mostly along the plane
            centres.append(centres[-1] + (a + b) * rng.uniform(0.6, 1.0) * step / np.linalg.norm(step))
        return multilevel_metaball(np.stack(centres), radii)
    return [random_object(rng, centre_mm, shape)]


def random_concentration(rng: np.random.Generator, spin_density: torch.Tensor, *, n_objects: int | None = None,
                         families: tuple[str, ...] = SHAPES) -> torch.Tensor:
    """3-D SPIO concentration (x, y, z) in µg Fe/mm³: 1–5 random objects of ``families`` centred on tissue of the
    plane.

    Each object part has one concentration, log-uniform in 0.22–27.9 µg Fe/mm³; overlapping objects take the
    maximum.
    """
    n = int(rng.integers(1, 6)) if n_objects is None else n_objects
    tissue = torch.nonzero(spin_density > 0.2 * spin_density.max())
    x, _, z = grid_3d_mm()
    concentration = torch.zeros(x.shape[0], acq.VIEWLINE_NY, z.shape[2])
    for _ in range(n):
        i, k = tissue[rng.integers(len(tissue))].tolist() if len(tissue) else (64, 64)
        centre = (float(x[i, 0, 0]), float(rng.uniform(-1.5, 1.5)), float(z[0, 0, k]))
        for mask in _object_parts(rng, centre, families[int(rng.integers(len(families)))]):
            concentration = torch.where(mask, torch.clamp(concentration, min=log_uniform_level(rng)), concentration)
    return concentration


def varied_concentration(rng: np.random.Generator, spin_density: torch.Tensor) -> torch.Tensor:
    """:func:`random_concentration` with each object drawn from :data:`SHAPES` + :data:`EXTRA_SHAPES` (issue 24,
    session 26: capsules and multi-level metaballs besides metaballs, tori and cylinders)."""
    return random_concentration(rng, spin_density, families=SHAPES + EXTRA_SHAPES)
