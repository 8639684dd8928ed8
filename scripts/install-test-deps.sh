#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo, into ./.emulators (git-ignored):
#   - moto[server]   (PyPI): local Kinesis, CloudWatch Logs, DynamoDB and S3
#   - kinesis-local  (npm):  kinesis-mock, the faithful Kinesis (resharding)
# Idempotent: does nothing when both are already installed at the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
KINESIS_LOCAL_VERSION="0.6.2"
dir=".emulators"
mkdir -p "$dir"

if ! "$dir/venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "installing moto[server]==$MOTO_VERSION into $dir/venv" >&2
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

if [ "$(node -p "require('./$dir/node_modules/kinesis-local/package.json').version" 2>/dev/null)" != "$KINESIS_LOCAL_VERSION" ]; then
  echo "installing kinesis-local@$KINESIS_LOCAL_VERSION into $dir" >&2
  [ -f "$dir/package.json" ] || echo '{"name":"unistream-test-emulators","private":true}' > "$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund "kinesis-local@$KINESIS_LOCAL_VERSION")
fi
