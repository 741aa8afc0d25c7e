#!/usr/bin/env bash
# The `run --show` window tests for real (tests/runtime/test_window_xvfb.py): a virtual X display
# (Xvfb; xwd for screenshots, xdotool for keys) and an OpenCV with windows. The project's venv keeps
# its headless OpenCV; a second venv ($GUI_VENV) holds only opencv-python (the same version) and
# reaches everything else, the editable project included, through the project's venv.
# Usage: scripts/test_window.sh [pytest args]     (make test-window)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
GUI_VENV=${GUI_VENV:-.venv-gui}

missing=""
for tool in Xvfb xwd xdotool; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -q xvfb x11-apps xdotool >/dev/null
    else
        echo "test_window.sh needs$missing: sudo apt-get install xvfb x11-apps xdotool" >&2
        exit 2
    fi
fi

if [ ! -x "$GUI_VENV/bin/python" ]; then
    headless=$("$VENV/bin/python" -m pip show opencv-python-headless 2>/dev/null | awk '/^Version:/ {print $2}')
    "$VENV/bin/python" -m venv "$GUI_VENV"
    "$GUI_VENV/bin/python" -m pip install -q --no-deps "opencv-python${headless:+==$headless}"
    project_site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    gui_site=$("$GUI_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # after the GUI venv's own packages, so its cv2 wins; addsitedir also runs the project's .pth files
    echo "import site; site.addsitedir('$project_site')" > "$gui_site/project-venv.pth"
fi
"$GUI_VENV/bin/python" -c 'import cv2, sys; i = cv2.getBuildInformation(); print("OpenCV", cv2.__version__, i[i.index("GUI:"):].split("\n")[0], file=sys.stderr)'
exec "$GUI_VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/runtime/test_window_xvfb.py "$@"
