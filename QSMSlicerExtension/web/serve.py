"""``make web``: serve the four tools in a browser (``--host``, ``--port``; see ``qsm_web/launcher.py``).

Run with ``.venv-web/bin/python`` (``make web`` does), which has trame-slicer and the slicer-core it pins.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qsm_web.launcher import main  # noqa: E402

if __name__ == "__main__":
    main()
