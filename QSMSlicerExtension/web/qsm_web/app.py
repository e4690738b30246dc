"""One session's web page: trame-slicer's slice views of the session's scene, one tab per capability.

A tab has the module panel's inputs (uploaded NIfTI files, a ``.bval`` for IVIM), its parameters, Run and
Cancel, a progress bar and the bundle's log, links to download every output file, for rim the lesion table
(click a row: the slice views jump to the lesion) and for SPIO the panel's "Objects" section (Report objects → a
table of the map's objects and how far each level can be trusted — click a row: the views jump to the object — and
its CSV) and "Bench tubes" section (a lumen labelmap, margin and inner diameter → Read tubes → a table of the tubes
and its CSV). The work is
:class:`qsm_web.session.Session`'s, i.e. the modules' Logic classes. ``GET /api/scene`` returns
:meth:`Session.summary` as JSON (what the browser tests check); ``GET /download/<tab>/<file>`` serves an output
file; ``POST /api/page/<tab>`` opens a tab (the launcher's call when it hands this session to a browser tab).

Run one session: ``.venv-web/bin/python -m qsm_web.app --port 0`` (``make web`` runs :mod:`qsm_web.launcher`,
which starts one of these per browser tab).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import signal
import sys

from qsm_web import slicer_layer

LOG_LINES = 200  # log lines kept on the page
POLL_S = 0.2  # how often the run is polled (as the panels' QTimer)
#: The tube table's columns on the page (every column of the tool's CSV is in the download).
TUBE_COLUMNS = {"label": "tube", "lumen_area_mm2": "lumen (mm²)", "iron_ug_per_mm": "iron (µg Fe/mm)",
                "concentration_ug_per_mm3": "c (µg Fe/mm³)"}
OBJECT_COLUMNS = {"label": "#", "area_mm2": "mm²", "level_ug_per_mm3": "µg Fe/mm³", "p_no_iron": "p(no Fe)",
                  "level_factor_80": "×/÷ (80 %)"}  # the CSV download has every column


def lesion_headers() -> list[dict]:
    """Headers of the lesion table: every column of the rim bundle's lesion CSV, titled with its unit, as the
    bundle's capability description lists them (the one place the columns are written)."""
    from QSMSlicerCommon import capability

    columns = capability.describe("rim_lesion_detection")["outputs"]["lesions"]["columns"]
    return [{"title": f"{c['name']} ({c['unit']})" if c["unit"] else c["name"], "key": c["name"]} for c in columns]


def default_bundle_python() -> str:
    """The project's ``.venv`` Python (it has torch and MONAI), else this one."""
    candidate = slicer_layer.REPO / ".venv" / "bin" / "python"
    return str(candidate) if candidate.is_file() else sys.executable


class WebApp:
    """The trame server, its slice views and the page of one session."""

    def __init__(self, server=None, *, bundle_python: str | None = None, page: str = "qsm") -> None:
        slicer_layer.import_slicer()  # before trame-slicer's own ``from slicer import ...``
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        from qsm_web.session import Session

        self.server = server or get_server(client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.slicer_app = SlicerApp()
        self.session = Session(self.slicer_app, bundle_python=bundle_python or default_bundle_python())
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        views = [ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view(),
                 ViewLayoutDefinition.sagittal_view()]
        self.layout_manager.register_layout_dict({"slices": Layout(LayoutDirection.Horizontal, views)})
        self.layout_manager.set_layout("slices")
        self._log: list[str] = []
        self._init_state(page)
        self._build_ui()
        self.server.controller.on_server_bind.add(self._add_routes)
        self.server.controller.on_server_ready.add(self._start_polling)
        self.server.controller.on_server_exited.add(lambda **_: self.session.close())

    # -- state ---------------------------------------------------------------------------------------------------

    def _init_state(self, page: str) -> None:
        state = self.server.state
        state.trame__title = "QSM Slicer Extension"
        state.page = page
        state.running, state.progress, state.status, state.log, state.error = False, 0, "", "", ""
        state.lesions, state.lesion_headers = [], []
        state.tubes, state.tube_headers = [], []
        state.objects, state.object_headers = [], []
        state.spio__tube_lumens, state.spio__tube_lumens__name = None, ""
        state.spio_tube_margin_mm, state.spio_tube_inner_diameter_mm = 1.2, ""
        state.change("spio__tube_lumens")(self._file_handler("spio__tube_lumens", self.session.upload_lumens))
        for key, spec in self.session.pages.items():
            state[f"{key}_downloads"] = []
            for upload in spec.uploads:
                state[f"{key}__{upload.parameter}"] = None  # the file input's model
                state[f"{key}__{upload.parameter}__name"] = ""
                state.change(f"{key}__{upload.parameter}")(self._on_upload(key, upload.parameter))
            parameters = self.session.parameters(key)
            for parameter in spec.parameters:
                name = f"{key}_{parameter.name}"
                state[name] = getattr(parameters, parameter.name)
                state.change(name)(self._on_parameter(key, parameter.name))

    def _on_upload(self, key: str, parameter: str):
        return self._file_handler(f"{key}__{parameter}",
                                  lambda name, content: self.session.upload(key, parameter, name, content))

    def _file_handler(self, model: str, load):
        """A file input's change handler: the first file chosen in state ``model`` goes to ``load(name, content)``,
        whose returned node name is shown under the input (``<model>__name``)."""
        def handler(**changes) -> None:
            files = changes[model]
            files = [files] if isinstance(files, dict) else list(files or [])
            if not files:
                return
            from trame.app.file_upload import ClientFile

            file = ClientFile(files[0])
            self._guarded(lambda: self.server.state.update({f"{model}__name": load(file.name, file.content)}))
        return handler

    def _on_parameter(self, key: str, name: str):
        def handler(**changes) -> None:
            self._guarded(lambda: self.session.set_parameter(key, name, changes[f"{key}_{name}"]))
        return handler

    def _guarded(self, action, *, user_action: bool = True) -> bool:
        """Run an action; a bad input becomes the page's one-line error instead of a traceback. A user action
        first clears the previous error."""
        if user_action:
            self.server.state.error = ""
        try:
            action()
        except (ValueError, RuntimeError, OSError) as error:
            self.server.state.error = str(error)
            return False
        return True

    # -- run -----------------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Start the current tab's bundle."""
        state = self.server.state
        self._log.clear()
        state.log, state.progress, state.status = "", 0, "starting"
        if self._guarded(lambda: self.session.start(state.page, on_line=self._on_line, on_progress=self._on_progress)):
            state.running = True

    def read_tubes(self) -> None:
        """The SPIO page's "Read tubes": the tube reading of its last map, run and polled like a bundle."""
        state = self.server.state
        self._log.clear()
        state.log, state.progress, state.status = "", 0, "reading the tubes"
        if self._guarded(lambda: self.session.start_tubes(state.spio_tube_margin_mm,
                                                          state.spio_tube_inner_diameter_mm)):
            state.running = True

    def report_objects(self) -> None:
        """The SPIO page's "Report objects": the object report of its last map, run and polled like a bundle."""
        state = self.server.state
        self._log.clear()
        state.log, state.progress, state.status = "", 0, "reporting the objects"
        if self._guarded(self.session.start_objects):
            state.running = True

    def cancel(self) -> None:
        """Stop the run (its process group and its temporary files)."""
        result = self.session.cancel()
        if result is not None:
            self.server.state.update({"running": False, "status": result.message})

    def _on_line(self, stream: str, line: str) -> None:
        self._log.append(line)
        del self._log[:-LOG_LINES]
        self.server.state.log = "\n".join(self._log)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.server.state.progress = int(round(100 * fraction))
        if message:
            self.server.state.status = message

    def _start_polling(self, **_) -> None:
        asyncio.get_event_loop().create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if self.session.job is None:
                continue
            with self.server.state:
                self._guarded(self._poll_once, user_action=False)

    def _poll_once(self) -> None:
        """Stream the run's new output to the page; on its end show the result (outputs loaded by the session)."""
        from QSMSlicerCommon.job import JobStatus

        key, state = self.session.job_page, self.server.state
        try:
            result = self.session.poll()
        finally:
            state.running = self.session.running
        if result is None:
            return
        state.status = result.message
        if result.succeeded:
            state.progress = 100
            state[f"{key}_downloads"] = list(self.session.downloads[key])
            if key == "spio":
                state.tubes = [{column: f"{float(row[column]):.4g}" for column in TUBE_COLUMNS}
                               for row in self.session.tube_rows()]
                state.tube_headers = [{"title": title, "key": column} for column, title in TUBE_COLUMNS.items()]
                state.objects = [{column: f"{float(row[column]):.4g}" for column in OBJECT_COLUMNS}
                                 for row in self.session.object_rows()]
                state.object_headers = [{"title": title, "key": column} for column, title in OBJECT_COLUMNS.items()]
            if key == "rim":
                rows = self.session.lesion_rows()
                state.lesions = rows
                state.lesion_headers = lesion_headers()
        else:
            state.error = result.message if result.status is JobStatus.FAILED else ""

    def jump(self, row: int) -> None:
        """Lesion table click: centre the slice views on that lesion."""
        ras = self.session.jump_to_lesion(row)
        self.server.state.status = f"lesion {row + 1} at RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) mm"

    def jump_to_object(self, row: int) -> None:
        """Object table click: centre the slice views on that object, over its map."""
        ras = []
        if self._guarded(lambda: ras.extend(self.session.jump_to_object(row))):
            label = self.server.state.objects[row]["label"]
            self.server.state.status = f"object {label} at RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) mm"

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def _add_routes(self, wslink_server) -> None:
        from aiohttp import web

        async def scene(_request):
            return web.json_response(self.session.summary())

        async def show_page(request):  # the launcher hands a spare session to a tab asking for this page
            key = request.match_info["key"]
            if key not in self.session.pages:
                raise web.HTTPNotFound(text=f"no page {key!r}")
            with self.server.state:
                self.server.state.page = key
            return web.json_response({"page": key})

        async def download(request):
            key, name = request.match_info["key"], request.match_info["name"]
            if key not in self.session.downloads or name not in self.session.downloads[key]:
                raise web.HTTPNotFound(text=f"no output {name!r} in this session's {key} runs")
            return web.FileResponse(self.session.root / "downloads" / key / name,
                                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

        wslink_server.app.add_routes([web.get("/api/scene", scene), web.post("/api/page/{key}", show_page),
                                      web.get("/download/{key}/{name}", download)])

    # -- page ----------------------------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v

        with SinglePageWithDrawerLayout(self.server, theme="dark") as layout:
            layout.title.set_text("QSM Slicer Extension")
            with layout.toolbar:
                v.VSpacer()
                with v.VTabs(v_model=("page",), density="compact"):
                    for key, spec in self.session.pages.items():
                        v.VTab(spec.title, value=key, id=f"tab-{key}")
            with layout.drawer as drawer:
                drawer.width = 380
                with html.Div(classes="pa-3"):
                    for key, spec in self.session.pages.items():
                        self._page_form(v, html, key, spec)
                    self._run_controls(v, html)
            with layout.content:
                with html.Div(style="height: calc(100vh - 64px);", id="views"):
                    self.layout_manager.initialize_layout_grid(layout)

    def _page_form(self, v, html, key: str, spec) -> None:
        with html.Div(v_if=f"page === '{key}'", id=f"page-{key}"):
            html.Div(spec.help, classes="text-caption mb-3")
            for upload in spec.uploads:
                v.VFileInput(v_model=(f"{key}__{upload.parameter}",), label=upload.label, accept=upload.accept,
                             density="compact", show_size=True, disabled=("running",),
                             hint=(f"{key}__{upload.parameter}__name ? 'loaded as ' + "
                                   f"{key}__{upload.parameter}__name : ''",), persistent_hint=True,
                             classes=f"mb-2 upload-{upload.parameter}")
            for parameter in spec.parameters:
                if parameter.choices:
                    v.VSelect(v_model=(f"{key}_{parameter.name}",), label=parameter.label,
                              items=(f"{key}_{parameter.name}_choices", list(parameter.choices)),
                              density="compact", disabled=("running",), classes=f"param-{parameter.name}")
                else:
                    v.VTextField(v_model=(f"{key}_{parameter.name}",), label=parameter.label,
                                 type="text" if parameter.text else "number",
                                 density="compact", disabled=("running",), classes=f"param-{parameter.name}")
            with html.Div(v_if=f"{key}_downloads.length", classes="mb-2"):
                html.Div("Outputs", classes="text-subtitle-2")
                with html.Div(v_for=f"name in {key}_downloads", key="name"):
                    html.A("{{ name }}", href=(f"'download/{key}/' + name",), download=True,
                           classes="download-link")
            if key == "rim":
                self._lesion_table(v, html)
            if key == "spio":
                self._object_section(v, html)
                self._tube_section(v, html)

    def _lesion_table(self, v, html) -> None:
        """The rim lesion table: one row per lesion; a click centres the slice views on it."""
        self.server.trigger("jump_to_lesion")(self.jump)
        _state_table(v, html, "lesions", "lesion_headers", "lesion", click="jump_to_lesion")

    def _object_section(self, v, html) -> None:
        """The SPIO panel's "Objects" section, once a map exists: Report objects, and the table of the last report."""
        with html.Div(v_if="spio_downloads.length", id="objects", classes="my-2"):
            html.Div("Objects", classes="text-subtitle-2")
            html.Div("Each object: its area, level, the chance it holds no iron, and the factor within which 80 % of "
                     "simulated objects like it had their level (all columns in the CSV); click a row to centre the "
                     "views on it.", classes="text-caption mb-2")
            v.VBtn("Report objects", click=self.report_objects, disabled=("running",), id="report-objects-button")
            self.server.trigger("jump_to_object")(self.jump_to_object)
            _state_table(v, html, "objects", "object_headers", "object", click="jump_to_object")

    def _tube_section(self, v, html) -> None:
        """The SPIO panel's "Bench tubes" section, once a map exists: lumens, margin, inner diameter, Read tubes,
        and the table of the last reading (one row per tube)."""
        from qsm_web.session import TUBE_LUMENS

        with html.Div(v_if="spio_downloads.length", id="bench-tubes", classes="my-2"):
            html.Div("Bench tubes", classes="text-subtitle-2")
            html.Div("Tubes with a dark wall: each tube's iron summed around it over its lumen's area.",
                     classes="text-caption mb-2")
            v.VFileInput(v_model=("spio__tube_lumens",), label=TUBE_LUMENS.label, accept=TUBE_LUMENS.accept,
                         density="compact", show_size=True, disabled=("running",),
                         hint=("spio__tube_lumens__name ? 'loaded as ' + spio__tube_lumens__name : ''",),
                         persistent_hint=True, classes="mb-2 upload-tube_lumens")
            v.VTextField(v_model=("spio_tube_margin_mm",), label="Margin around each lumen (mm)", type="number",
                         density="compact", disabled=("running",), classes="param-tube_margin_mm")
            v.VTextField(v_model=("spio_tube_inner_diameter_mm",), type="number", density="compact",
                         label="Tubes' inner diameter (mm; empty: the drawn lumens' areas)",
                         disabled=("running",), classes="param-tube_inner_diameter_mm")
            v.VBtn("Read tubes", click=self.read_tubes, disabled=("running",), id="read-tubes-button")
            _state_table(v, html, "tubes", "tube_headers", "tube")

    def _run_controls(self, v, html) -> None:
        with html.Div(classes="d-flex ga-2 my-2"):
            v.VBtn("Run", click=self.run, disabled=("running",), color="primary", id="run-button")
            v.VBtn("Cancel", click=self.cancel, disabled=("!running",), id="cancel-button")
        v.VProgressLinear(model_value=("progress",), height=8, classes="my-2")
        html.Div("{{ status }}", id="status", classes="text-caption")
        v.VAlert(v_if="error", text=("error",), type="error", density="compact", id="error", classes="my-2")
        with html.Div(style="max-height: 220px; overflow: auto; display: flex; flex-direction: column-reverse;"):
            html.Pre("{{ log }}", id="log", style="font-size: 11px;")  # scrolled to the newest line


def _state_table(v, html, rows: str, headers: str, name: str, *, click: str | None = None) -> None:
    """A table of the state's ``rows`` (column → text) under its ``headers`` (title, key), shown once it has rows;
    ids ``<name>-table`` and ``<name>-row`` for the tests. ``click``: a trigger a row click calls with its index."""
    row_click = {"click": f"trigger('{click}', [index])", "style": "cursor: pointer;"} if click else {}
    with v.VTable(v_if=f"{rows}.length", density="compact", id=f"{name}-table", classes="my-2"):
        with html.Thead(), html.Tr():
            html.Th("{{ column.title }}", v_for=f"column in {headers}", key="column.key")
        with html.Tbody(), html.Tr(v_for=f"(row, index) in {rows}", key="index", classes=f"{name}-row", **row_click):
            html.Td("{{ row[column.key] }}", v_for=f"column in {headers}", key="column.key")


def main(argv: list[str] | None = None) -> None:
    """Serve one session (a scene, a folder) until its last browser tab has gone for ``--timeout`` seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port (printed when ready)")
    parser.add_argument("--page", default="qsm", choices=("qsm", "ivim", "spio", "rim"))
    parser.add_argument("--timeout", type=int, default=300, help="seconds without a browser tab before exiting")
    parser.add_argument("--bundle-python", default=None, help="Python that runs the bundles (default: .venv)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    app = WebApp(bundle_python=args.bundle_python, page=args.page)

    def stop(_signum, _frame) -> None:  # the launcher stops a session: cancel its run, remove its folder
        app.session.close()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    atexit.register(app.session.close)  # also when the server cannot start (e.g. the port is taken)
    app.server.start(host=args.host, port=args.port, timeout=args.timeout, open_browser=False,
                     exec_mode="main", show_connection_info=False)


if __name__ == "__main__":
    main()
