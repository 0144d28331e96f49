#!/usr/bin/env bash
# Creates .venv with CPython 3.10 and installs the lock plus the project.
# Idempotent: the install is skipped when the lock and pyproject.toml are unchanged since the last
# successful install (a hash of both is kept in .venv/.dlforge-installed).
set -euo pipefail

venv=${VENV:-.venv}
lock=requirements/lock-py310.txt

find_python310() {
  local candidate
  for candidate in "${PYTHON:-}" python3.10; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/3.10*/bin/python3.10; do
      if [ -x "$candidate" ]; then
        echo "$candidate"
        return 0
      fi
    done
  fi
  return 1
}

if ! python=$(find_python310); then
  echo "setup: CPython 3.10 is required (TFX 1.16 supports Python 3.9-3.10 only), but none was" \
    "found: not \$PYTHON, not 'python3.10' on PATH, not under 'pyenv root'/versions/3.10*." \
    "Install CPython 3.10 (e.g. 'pyenv install 3.10') or set PYTHON=/path/to/python3.10." >&2
  exit 1
fi

wanted=$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
stamp="$venv/.dlforge-installed"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "setup: $venv is up to date with $lock"
  exit 0
fi

if [ ! -x "$venv/bin/python" ] \
  || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
  echo "setup: creating $venv with $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

echo "setup: installing $lock into $venv (no dependency resolving; several minutes on a cold cache)"
# wheel (and packaging, which it imports) first, so the few source-only packages build as
# wheels rather than by the deprecated 'setup.py install'.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  "$(grep -E '^wheel==' "$lock")" "$(grep -E '^packaging==' "$lock")"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$lock"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
"$venv/bin/python" -m pip check
echo "$wanted" > "$stamp"
echo "setup: done"
