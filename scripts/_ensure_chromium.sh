#!/bin/sh
# Install Debian's chromium (used by tests/web for the headless status-page test) when it
# is missing. Idempotent; needs root or password-less sudo (it never prompts). Prints the
# path of the chromium binary on success.
set -eu

if command -v chromium >/dev/null 2>&1; then
    command -v chromium
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "chromium is missing and installing it needs root or password-less sudo:" >&2
    echo "  apt-get install -y chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium
