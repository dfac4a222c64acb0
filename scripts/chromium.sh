#!/usr/bin/env bash
# Installs Debian's chromium for the UI's browser tests (internal/ui) unless a browser is already there,
# and prints the binary's path. Idempotent: a second run installs nothing. CHROME_BIN, when set and
# executable, wins.
set -euo pipefail

find_bin() {
	if [ -n "${CHROME_BIN:-}" ] && [ -x "${CHROME_BIN}" ]; then
		echo "${CHROME_BIN}"
		return 0
	fi
	local b
	for b in chromium chromium-browser google-chrome; do
		if command -v "$b" >/dev/null 2>&1; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}

if bin=$(find_bin); then
	echo "$bin"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "chromium.sh: no chromium on PATH and no apt-get to install it" >&2
	exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2

bin=$(find_bin) || { echo "chromium.sh: chromium installed but not found on PATH" >&2; exit 1; }
echo "$bin"
