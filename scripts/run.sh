#!/usr/bin/env bash
# Sets up everything and runs sfud with its embedded defaults:
#   scripts/run.sh [sfud flags...]
# Then open http://127.0.0.1:7880/web/ or use the API key it prints.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh"
"$here/scripts/build.sh" "$here/build"
exec "$here/build/sfud" --web-root "$here/web" --dev 1 "$@"
