# Sourced by scripts/example, scripts/test and scripts/docs (not run on its own).
#
# use_venv EXTRAS   makes sure the project virtualenv exists and has the project installed
#                   (editable, with the given extras, e.g. "tests,docs" or ""), then sets
#                   $PY to its python. Nothing is installed into the system Python, so this
#                   works on a Python that refuses pip installs (PEP 668, Debian/Ubuntu).
#
# The virtualenv is .venv at the repository root (CHANNELS_VENV=/path puts it elsewhere).
# It is reused when present: pip runs again only when setup.py or pyproject.toml changed
# or new extras are asked for, which a stamp file in the virtualenv records.
# PYTHON=/path/to/python3.x chooses the interpreter the virtualenv is made from.

VENV="${CHANNELS_VENV:-$PWD/.venv}"
STAMP="$VENV/.channels-install-stamp"

_say() { echo "scripts/${0##*/}: $*" >&2; }

# The first Python 3.11+ among $PYTHON, python3, python3.13, python3.12, python3.11.
_find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    _say "needs Python 3.11 or newer; none found as ${PYTHON:+$PYTHON, }python3, python3.13," \
        "python3.12 or python3.11. Install one (e.g. apt-get install python3) or set PYTHON=/path/to/python3.x."
    return 1
}

# Debian and Ubuntu ship the venv module's pip bootstrap (ensurepip) in python3.X-venv.
_ensure_venv_module() {
    local python="$1" version
    if "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        return 0
    fi
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        _say "installing python$version-venv (the venv module of $python)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "python$version-venv" >/dev/null \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                python3-venv >/dev/null \
            || true
        if "$python" -c 'import venv, ensurepip' 2>/dev/null; then
            return 0
        fi
    fi
    _say "$python cannot create a virtualenv: its venv module (with ensurepip) is missing."
    _say "Install it and run this again: sudo apt-get install python$version-venv"
    return 1
}

_venv_usable() {
    [ -x "$VENV/bin/python" ] \
        && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

# What the installed packages were made from: setup.py and pyproject.toml.
_install_key() {
    cat setup.py pyproject.toml | "$VENV/bin/python" -c \
        'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}

use_venv() {
    local extras="$1" python key stamped_key="" stamped_extras="" wanted extra
    if ! _venv_usable; then
        python="$(_find_python)" || exit 1
        _ensure_venv_module "$python" || exit 1
        if [ -e "$VENV/pyvenv.cfg" ]; then
            _say "recreating $VENV (its python does not run or is older than 3.11)"
            rm -rf "$VENV"
        elif [ -e "$VENV" ] && [ -n "$(ls -A "$VENV")" ]; then
            _say "$VENV exists but is not a virtualenv; move it away or set CHANNELS_VENV"
            exit 1
        fi
        _say "creating the project virtualenv $VENV with $python"
        "$python" -m venv "$VENV" || {
            _say "could not create $VENV with $python -m venv"
            exit 1
        }
    fi
    PY="$VENV/bin/python"
    key="$(_install_key)"
    if [ -f "$STAMP" ]; then
        read -r stamped_key stamped_extras <"$STAMP" || true
    fi
    # Reinstall when the packaging files changed or an extra is missing; keep the extras
    # already installed, so scripts/example after scripts/test does not reinstall.
    wanted="$stamped_extras"
    for extra in ${extras//,/ }; do
        case ",$wanted," in
            *",$extra,"*) ;;
            *) wanted="${wanted:+$wanted,}$extra" ;;
        esac
    done
    if [ "$key" != "$stamped_key" ] || [ "$wanted" != "$stamped_extras" ]; then
        _say "installing the project${wanted:+ with [$wanted]} into $VENV"
        rm -f "$STAMP"
        "$PY" -m pip install --quiet --disable-pip-version-check \
            -e ".${wanted:+[$wanted]}" || {
            _say "pip could not install the project into $VENV (output above)"
            exit 1
        }
        echo "$key $wanted" >"$STAMP"
    fi
}
