"""The four pages in headless Chromium: upload, run the real bundle, check the output nodes through the server
(``/api/scene``), download every output, a non-empty view in the screenshot; cancel; two tabs kept apart; the SPIO
page's object report and tube reading of the map it made.

Each page runs the module's own Logic class in the web app's session process (``qsm_web.session``), with the
bundle as a child process of the project's ``.venv``; fast methods keep the suite's share small (TKD, IVIM
least squares). Screenshots go to ``$QSM_WEB_SCREENSHOTS`` when set (the README's were made so).
"""

from __future__ import annotations

import gzip
import io
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import web_inputs

RUN_TIMEOUT_S = 180
POLL_MS = 200  # page checks by timer: animation frames (Playwright's default) stall in a background tab
PAGE_TIMEOUT_MS = 90_000  # a session process starts VTK and Slicer's libraries (seconds; more on a busy machine)


def open_page(context, web_server, key: str):
    """A new tab of ``context`` on ``/<key>``: the launcher starts a session and redirects the tab to it."""
    page = context.new_page()
    page.goto(web_server.url + key, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector("#run-button", timeout=PAGE_TIMEOUT_MS)
    web_server.session_roots.append(Path(scene(page)["root"]))
    return page


def origin(page) -> str:
    parts = urlsplit(page.url)
    return f"{parts.scheme}://{parts.netloc}"


def scene(page) -> dict:
    """The session's scene as the server reports it (``Session.summary``)."""
    response = page.request.get(origin(page) + "/api/scene")
    assert response.ok, response.status
    return response.json()


def upload(page, files: dict[str, Path]) -> None:
    for parameter, path in files.items():
        page.set_input_files(f".upload-{parameter} input[type=file]", str(path))
        page.locator(f".upload-{parameter}").get_by_text("loaded as").or_(
            page.locator(f".upload-{parameter}").get_by_text(f"loaded as {path.name}")).first.wait_for()


def choose(page, parameter: str, value: str) -> None:
    """Pick ``value`` in the page's select for ``parameter``, as a user does."""
    page.click(f".param-{parameter}")
    page.locator(".v-overlay .v-list-item", has_text=value).first.click()
    page.locator(f".param-{parameter}").get_by_text(value, exact=True).wait_for()


def prepare(page, key: str, inputs) -> None:
    """Switch to the page's tab, upload its inputs and make its choices (``PAGES``), as a user does (a tab in the
    background gets hardly any animation frames, which the menus and Playwright's clicks wait for)."""
    page.bring_to_front()
    upload(page, inputs[key])
    for parameter, value in PAGES[key][0].items():
        choose(page, parameter, value)


def wait_until_done(page, *, timeout_s: float = RUN_TIMEOUT_S) -> None:
    """Wait until the run has ended; fail with the page's one-line error if it failed."""
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('done:') "
                           "|| document.querySelector('#error') !== null", polling=POLL_MS, timeout=timeout_s * 1000)
    assert page.locator("#error").count() == 0, page.inner_text("#error")


def check_page(page, key: str, screenshots: Path) -> dict:
    """After a run: the output nodes' values (through the server), every download, a drawn view; the summary."""
    _, check, n_outputs = PAGES[key]
    summary = scene(page)
    assert summary["running_pid"] is None and summary["workspaces"] == []  # the run's temporary files are gone
    check(page, summary)
    check_downloads(page, key, n_outputs)
    check_views_drawn(page, screenshots / f"{key}.png")
    return summary


def volume(summary: dict, name: str) -> dict:
    found = [v for v in summary["volumes"] if v["name"] == name]
    assert found, f"no volume {name!r} in {[v['name'] for v in summary['volumes']]}"
    return found[0]


def axial_centre(page) -> np.ndarray:
    """Grey levels of the central half of the first (axial) slice view, from a screenshot of the views."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(page.locator("#views").screenshot())).convert("L"), dtype=float)
    height, width = pixels.shape
    return pixels[height // 4: 3 * height // 4, width // 12: width // 4]


def check_views_drawn(page, path: Path) -> None:
    """Save the page; the axial view must show an image (not black) at its centre within 20 s."""
    deadline = time.monotonic() + 20
    while (drawn := (axial_centre(page) > 20).mean()) < 0.005 and time.monotonic() < deadline:
        time.sleep(0.5)
    page.screenshot(path=str(path))
    assert drawn >= 0.005, f"the axial view is black at its centre ({drawn:.1%} of its pixels lit)"


def check_downloads(page, key: str, expected: int) -> None:
    """Every output is offered, and each link serves a readable NIfTI or the lesion CSV."""
    import nibabel as nib

    links = page.locator(f"#page-{key} a.download-link")
    assert links.count() == expected
    for i in range(expected):
        href = links.nth(i).get_attribute("href")
        response = page.request.get(f"{origin(page)}/{href}")
        assert response.ok, href
        if href.endswith(("_tubes.csv", "_objects.csv")):
            assert response.text().startswith("label,"), href
        elif href.endswith(".csv"):
            assert response.text().startswith("lesion_id,"), href
        else:
            assert nib.Nifti1Image.from_bytes(gzip.decompress(response.body())).ndim >= 3, href


def check_qsm(page, summary: dict) -> None:
    chi = volume(summary, "box_field_chi_ppm")
    assert chi["shape"] == [24, 24, 24] and chi["colour"] == "DivergingBlueRed"
    assert chi["max"] > 0.05  # the χ = 0.1 ppm box


def check_ivim(page, summary: dict) -> None:
    d_map, f_map = volume(summary, "ivim_dwi_D_mm2_per_s"), volume(summary, "ivim_dwi_f_fraction")
    assert d_map["shape"] == [3, 8, 10] and d_map["colour"] == "Viridis"
    np.testing.assert_allclose(d_map["mean"], web_inputs.IVIM_D, rtol=0.05)
    np.testing.assert_allclose(f_map["mean"], web_inputs.IVIM_F, atol=0.02)


def check_spio(page, summary: dict) -> None:
    concentration = volume(summary, "viewline_concentration_ugFe_per_mm3")
    assert concentration["shape"] == [1, 128, 128] and concentration["colour"] == "Inferno"
    assert concentration["max"] > 2.0  # the 6.98 µg Fe/mm³ cylinder
    page.get_by_text("Not yet quantitative: NMAE ≈ 0.35").wait_for()  # the accuracy caveat under the tab


def check_rim(page, summary: dict) -> None:
    assert {"name": "rim_qsm_lesions", "rows": 2} in summary["tables"]
    assert volume(summary, "rim_qsm_rim_labels")["class"] == "vtkMRMLLabelMapVolumeNode"
    header = page.locator("#lesion-table").inner_text()  # the columns and units of the bundle's description
    assert "volume_mm3 (mm³)" in header and "centroid_x (mm)" in header and "rim_probability" in header
    page.locator("#lesion-table .lesion-row").nth(1).click()
    page.get_by_text("lesion 2 at RAS").wait_for()
    expected = np.subtract(web_inputs.RIM_CENTRES[1], 16.0)  # the phantom's affine: RAS = index − 16 mm
    np.testing.assert_allclose(scene(page)["slice_centres_ras"]["Red"], expected, atol=0.6)


PAGES = {  # key: (choices a user makes, check, number of output files)
    "qsm": ({"method": "tkd"}, check_qsm, 1),
    "ivim": ({"method": "lsq"}, check_ivim, 4),
    "spio": ({}, check_spio, 1),
    "rim": ({}, check_rim, 2),
}


@pytest.mark.parametrize("key", ["ivim", "rim"])  # qsm and spio: in the two-tab test below
def test_page_runs_its_bundle_and_shows_the_outputs(key: str, context, web_server, inputs, screenshots) -> None:
    page = open_page(context, web_server, key)
    prepare(page, key, inputs)
    page.click("#run-button")
    wait_until_done(page)
    check_page(page, key, screenshots)


def test_bad_input_is_one_line_and_cancel_mid_run_leaves_no_process_and_no_file(context, web_server, inputs,
                                                                                tmp_path: Path) -> None:
    page = open_page(context, web_server, "ivim")
    page.click("#run-button")
    assert page.locator("#error").inner_text() == "select a DWI series"
    not_nifti = tmp_path / "notes.nii.gz"
    not_nifti.write_text("not an image")
    page.set_input_files(".upload-input_dwi input[type=file]", str(not_nifti))
    page.get_by_text("notes.nii.gz is not a NIfTI image").wait_for()
    wrong_count = tmp_path / "seven.bval"
    wrong_count.write_text("0 10 20 50 100 200 400\n")  # the series has 8 volumes
    upload(page, {"input_dwi": inputs["ivim"]["input_dwi"], "b_values_file": wrong_count})
    page.click("#run-button")
    page.locator("#error").wait_for(timeout=RUN_TIMEOUT_S * 1000)
    message = page.locator("#error").inner_text()
    assert "8" in message and "7" in message and "\n" not in message, message  # the bundle's own one line
    upload(page, inputs["ivim"])  # default: fit mode, IVIM-NET trained on the data (minutes)
    page.click("#run-button")
    deadline = time.monotonic() + 60
    while (pid := scene(page)["running_pid"]) is None:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    page.wait_for_function("document.querySelector('#log').innerText.length > 0", timeout=60_000)
    page.click("#cancel-button")
    page.get_by_text("cancelled by the user").wait_for(timeout=30_000)
    summary = scene(page)
    assert summary["running_pid"] is None and summary["workspaces"] == []
    assert not any(v["name"].startswith("ivim_dwi_") for v in summary["volumes"])
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the bundle's whole process group has ended


def test_two_tabs_running_different_jobs_do_not_see_each_others_nodes_or_files(context, web_server, inputs,
                                                                                 screenshots) -> None:
    """The QSM and SPIO pages run at the same time in two tabs, each checked as above, and stay apart."""
    qsm, spio = open_page(context, web_server, "qsm"), open_page(context, web_server, "spio")
    prepare(qsm, "qsm", inputs)
    prepare(spio, "spio", inputs)
    qsm.click("#run-button")
    spio.click("#run-button")
    wait_until_done(qsm)
    wait_until_done(spio)
    qsm_scene, spio_scene = check_page(qsm, "qsm", screenshots), check_page(spio, "spio", screenshots)
    qsm_names = {v["name"] for v in qsm_scene["volumes"]}
    spio_names = {v["name"] for v in spio_scene["volumes"]}
    assert qsm_names == {"box_field", "box_field_chi_ppm"}
    assert spio_names == {"viewline", "viewline_concentration_ugFe_per_mm3"}
    assert qsm_scene["root"] != spio_scene["root"]
    assert spio_scene["downloads"]["qsm"] == [] and qsm_scene["downloads"]["spio"] == []
    assert spio.request.get(f"{origin(spio)}/download/qsm/box_field_chi.nii.gz").status == 404
    check_objects(spio, screenshots)
    check_tubes(spio, inputs["spio"]["input_image"].parent, screenshots)


def check_objects(page, screenshots: Path) -> None:
    """The SPIO page's "Objects" after its map (session 44): Report objects → the scene's table node, the page's
    table and the CSV download; the cylinder is the object with the most iron, its level within its 80 % factor, and a
    click on its row centres the slice views on it."""
    page.bring_to_front()
    page.click("#report-objects-button")
    page.locator("#object-table .object-row").first.wait_for(timeout=RUN_TIMEOUT_S * 1000)
    assert page.locator("#error").count() == 0
    summary = scene(page)
    assert any(t["name"] == "viewline_concentration_ugFe_per_mm3 objects" for t in summary["tables"])
    assert summary["running_pid"] is None and summary["workspaces"] == []
    assert "×/÷ (80 %)" in page.inner_text("#object-table")
    check_downloads(page, "spio", 2)
    csv = page.request.get(f"{origin(page)}/download/spio/viewline_concentration_objects.csv").text()
    header, *rows = (line.split(",") for line in csv.strip().splitlines())
    rod = max((dict(zip(header, map(float, row), strict=True)) for row in rows), key=lambda r: r["iron_ug_per_mm"])
    print(f"object report of the {web_inputs.SPIO_LEVEL} µg Fe/mm³ cylinder: {rod}")
    assert abs(np.log(rod["level_ug_per_mm3"] / web_inputs.SPIO_LEVEL)) <= np.log(rod["level_factor_80"])
    # session 45: a click on the rod's row centres the slice views on it (the image's centre, index 63.5)
    from lightning_modules.spio.viewline import PIXEL_MM

    index = [float(row[0]) for row in rows].index(rod["label"])
    page.locator("#object-table .object-row").nth(index).click()
    page.get_by_text(f"object {int(rod['label'])} at RAS").wait_for()
    centre = (63.5 * PIXEL_MM[0], 63.5 * PIXEL_MM[1], 0.0)
    np.testing.assert_allclose(scene(page)["slice_centres_ras"]["Red"], centre, atol=PIXEL_MM[0])
    page.screenshot(path=str(screenshots / "spio_objects.png"))


def check_tubes(page, folder: Path, screenshots: Path) -> None:
    """The SPIO page's "Bench tubes" after its map: one-line errors for no lumens and lumens on another grid, then
    the cylinder's lumen read as a table (the scene's table node, the page's table, the CSV download) near its
    level."""
    page.bring_to_front()
    page.click("#read-tubes-button")
    page.get_by_text("upload a labelmap of the tube lumens").wait_for()
    upload(page, {"tube_lumens": web_inputs.spio_lumens(folder, shape=(64, 64))})
    page.click("#read-tubes-button")
    page.locator("#error", has_text="is not the concentration map's").wait_for(timeout=RUN_TIMEOUT_S * 1000)
    assert "\n" not in page.inner_text("#error")
    upload(page, {"tube_lumens": web_inputs.spio_lumens(folder)})
    page.click("#read-tubes-button")
    page.locator("#tube-table .tube-row").first.wait_for(timeout=RUN_TIMEOUT_S * 1000)
    assert page.locator("#error").count() == 0
    summary = scene(page)
    assert {"name": "viewline_concentration_ugFe_per_mm3 tubes", "rows": 1} in summary["tables"]
    assert summary["running_pid"] is None and summary["workspaces"] == []
    assert "c (µg Fe/mm³)" in page.inner_text("#tube-table")
    page.screenshot(path=str(screenshots / "spio_tubes.png"))
    check_downloads(page, "spio", 3)
    csv = page.request.get(f"{origin(page)}/download/spio/viewline_concentration_tubes.csv").text()
    header, row = (line.split(",") for line in csv.strip().splitlines())
    reading = dict(zip(header, map(float, row), strict=True))
    assert reading["label"] == 1
    print(f"tube reading of the {web_inputs.SPIO_LEVEL} µg Fe/mm³ cylinder: {reading}")
    # the cylinder item's bound (a bare rod at 19 dB; the reading is the map's iron over the drawn lumen's area)
    np.testing.assert_allclose(reading["concentration_ug_per_mm3"], web_inputs.SPIO_LEVEL, rtol=0.1)
