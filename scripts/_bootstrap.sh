# shellcheck shell=bash
# Bootstrap library for the README commands (scripts/demo, scripts/test).
#
# Usage, from a bash script (works under `set -euo pipefail`):
#     source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
#     gw_bootstrap
# or run it directly to install everything: `bash scripts/_bootstrap.sh`.
#
# gw_bootstrap, on a fresh Debian/Ubuntu-like machine:
#   1. finds a python3 >= 3.11 ($GW_PYTHON, else python3.13 .. python3.11, python3);
#   2. creates <repo>/.venv if missing;
#   3. runs `pip install -e '.[dev]'` when pyproject.toml or setup.py (the package layout) is
#      newer than the stamp .venv/.gw-bootstrap-stamp (so repeated runs take milliseconds);
#   4. installs mosquitto (and openssl) with apt-get when there is no mosquitto on PATH nor in
#      /usr/sbin, through sudo when not root. Note: Debian's mosquitto package enables and
#      starts a system broker on port 1883; the tests never use it (they start their own
#      brokers on free ports) and this script does not start or stop it.
# Afterwards these are exported: GW_ROOT (repository root), GW_VENV (the venv), GW_MOSQUITTO
# (the broker executable), and PATH with $GW_VENV/bin first.
# On failure it prints why on stderr and returns non-zero (it never exits the caller's shell).

GW_MIN_PYTHON_MINOR=11

_gw_say() { printf 'bootstrap: %s\n' "$*" >&2; }
_gw_fail() { printf 'bootstrap: error: %s\n' "$*" >&2; return 1; }

# Print the path of the first python >= 3.11 found; fail if none.
_gw_find_python() {
    local candidate path
    for candidate in "${GW_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        if "$path" -c "import sys; sys.exit(sys.version_info < (3, $GW_MIN_PYTHON_MINOR))" \
            2>/dev/null; then
            printf '%s\n' "$path"
            return 0
        fi
    done
    _gw_fail "no Python >= 3.$GW_MIN_PYTHON_MINOR found (tried \$GW_PYTHON, python3.13," \
        "python3.12, python3.11, python3). Install one (Debian/Ubuntu:" \
        "apt-get install python3 python3-venv) or set GW_PYTHON=/path/to/python3.11+"
}

# Run apt-get with the given arguments as root: directly, or through sudo.
_gw_apt_get() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _gw_fail "apt-get is not available: install $* with your system's package manager" \
            "(macOS: brew install mosquitto), then run this again"
        return 1
    fi
    local -a as_root=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            _gw_fail "need root to run 'apt-get $*' and sudo is not installed;" \
                "run as root: apt-get install -y mosquitto openssl"
            return 1
        fi
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}

# Print the mosquitto executable if one is installed (PATH, then the sbin directories).
_gw_find_mosquitto() {
    local dir
    if [[ -n "${GW_MOSQUITTO:-}" && -x "${GW_MOSQUITTO}" ]]; then
        printf '%s\n' "$GW_MOSQUITTO"
        return 0
    fi
    if command -v mosquitto >/dev/null 2>&1; then
        command -v mosquitto
        return 0
    fi
    for dir in /usr/sbin /usr/local/sbin /opt/homebrew/sbin; do
        if [[ -x "$dir/mosquitto" ]]; then
            printf '%s\n' "$dir/mosquitto"
            return 0
        fi
    done
    return 1
}

# Install the system packages the tests and the demo need, if any is missing.
_gw_system_packages() {
    local -a missing=()
    _gw_find_mosquitto >/dev/null || missing+=(mosquitto)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # systemd-analyze (verify, security) checks the shipped unit in tests/packaging.
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    ((${#missing[@]} == 0)) && return 0
    _gw_say "installing ${missing[*]} with apt-get (the package may start a system broker" \
        "on port 1883; the tests do not use it)"
    _gw_apt_get update -qq || _gw_fail "apt-get update failed" || return 1
    _gw_apt_get install -y -qq --no-install-recommends "${missing[@]}" \
        || _gw_fail "apt-get install ${missing[*]} failed" || return 1
    _gw_find_mosquitto >/dev/null \
        || _gw_fail "mosquitto is still not found after installing it" || return 1
}

# Whether the install is older than the files that say what to install.
_gw_install_stale() {
    local root="$1" stamp="$2"
    [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" || "$root/setup.py" -nt "$stamp" ]]
}

# Create the venv (if missing) and install the project (if pyproject.toml or setup.py changed).
# Holds a lock so that two README commands started at once do not install concurrently.
_gw_python_env() {
    local root="$1" venv="$2" python
    local stamp="$venv/.gw-bootstrap-stamp"
    if [[ -x "$venv/bin/python" ]] && ! _gw_install_stale "$root" "$stamp"; then
        return 0 # the fast path: nothing to do
    fi
    python="$(_gw_find_python)" || return 1
    mkdir -p "$venv"
    (
        if command -v flock >/dev/null 2>&1; then
            flock 9 || exit 1
        fi
        if [[ ! -x "$venv/bin/python" ]]; then
            _gw_say "creating $venv with $python ($("$python" -V 2>&1))"
            if ! "$python" -m venv "$venv"; then
                _gw_fail "'$python -m venv' failed; on Debian/Ubuntu install python3-venv" \
                    "(apt-get install python3-venv) and remove $venv, then run this again"
                exit 1
            fi
        fi
        if ! "$venv/bin/python" -c \
            "import sys; sys.exit(sys.version_info < (3, $GW_MIN_PYTHON_MINOR))"; then
            _gw_fail "$venv has $("$venv/bin/python" -V 2>&1), older than" \
                "3.$GW_MIN_PYTHON_MINOR: remove $venv and run this again"
            exit 1
        fi
        # Checked again under the lock: another command may have just done the install.
        if _gw_install_stale "$root" "$stamp"; then
            _gw_say "installing the project and its dev dependencies into $venv"
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                -e "$root[dev]" || { _gw_fail "pip install -e '.[dev]' failed"; exit 1; }
            touch "$stamp"
        fi
    ) 9>"$venv/.gw-bootstrap.lock"
}

gw_bootstrap() {
    local root venv mosquitto
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    [[ -f "$root/pyproject.toml" ]] || _gw_fail "no pyproject.toml in $root" || return 1
    venv="$root/.venv"
    _gw_system_packages || return 1
    _gw_python_env "$root" "$venv" || return 1
    # Bytecode for the project's own modules (an editable install has none, and with
    # PYTHONDONTWRITEBYTECODE set every start would compile ~60 modules: ~0.1 s here).
    # compileall only rewrites what changed, so this costs little on later runs.
    "$venv/bin/python" -m compileall -q "$root/gwproactor" >/dev/null \
        || _gw_say "warning: could not precompile gwproactor (start-up will be slower)"
    mosquitto="$(_gw_find_mosquitto)" || _gw_fail "mosquitto not found" || return 1
    export GW_ROOT="$root"
    export GW_VENV="$venv"
    export GW_MOSQUITTO="$mosquitto"
    # $venv/bin first, once (moved to the front if it was already elsewhere on PATH).
    if [[ "${PATH:-}" != "$venv/bin" && "${PATH:-}" != "$venv/bin:"* ]]; then
        local rest=":${PATH:-}:"
        rest="${rest//":$venv/bin:"/:}"
        rest="${rest#:}"
        rest="${rest%:}"
        export PATH="$venv/bin${rest:+:$rest}"
    fi
}

# Executed rather than sourced: bootstrap now.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    gw_bootstrap "$@"
    _gw_say "ready: venv $GW_VENV, mosquitto $GW_MOSQUITTO"
fi
