#!/bin/sh
# Install promtool (Debian's prometheus package, without recommends) when it is missing: the
# monitoring test checks config/monitoring/ with it. Idempotent; needs root or password-less
# sudo (never prompts). Prints the path of promtool on success.
set -eu

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "promtool is missing and installing it needs root: apt-get install prometheus" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool
