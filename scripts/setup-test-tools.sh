#!/usr/bin/env bash
# Installs the Debian packages that the test suite drives from outside Python, when missing:
# Chromium (the run report is opened in a real headless browser) and kubectl (the Kubernetes
# manifests are built with `kubectl kustomize`).
# Needs root or sudo and Debian's package archive; does nothing when every tool is present.
set -euo pipefail

# command:package pairs.
tools=("chromium:chromium" "kubectl:kubernetes-client")

missing=()
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  apt_get=(apt-get)
elif command -v sudo >/dev/null 2>&1; then
  apt_get=(sudo apt-get)
else
  echo "setup-test-tools: the tests need the Debian package(s) ${missing[*]}, which are not" \
    "installed, and installing them needs root or sudo. Install them and run again." >&2
  exit 1
fi
echo "setup-test-tools: installing ${missing[*]} with apt-get"
"${apt_get[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq \
  "${missing[@]}" >/dev/null
