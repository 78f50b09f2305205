#!/usr/bin/env bash
# azd prepackage hook: build the web UI into ui/dist, and put the Linux x64 Copilot CLI runtime
# at bin/copilot in the app package.
# The function app serves ui/dist itself (rlm_activities/web_ui.py); .funcignore ships the build,
# not the source. The Copilot SDK drives the CLI binary (COPILOT_CLI_PATH); Flex Consumption has
# no npm at run time and the SDK must not download it (COPILOT_SKIP_CLI_DOWNLOAD=1), so it ships
# inside the package. The version is the one pinned in package.json, so Azure runs what the tests ran.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

echo "prepackage: building the web UI (ui/dist)"
npm --prefix ui ci --no-audit --no-fund --loglevel=error
npm --prefix ui run build

pkg="@github/copilot-linux-x64"
version="$(node -p "require('./package.json').dependencies['$pkg']")"
if [[ -z "$version" || "$version" == "undefined" ]]; then
  echo "prepackage: $pkg is not pinned in package.json" >&2
  exit 1
fi

target="bin/copilot"
stamp="bin/.copilot-version"
if [[ -x "$target" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
  echo "prepackage: $target already at $pkg@$version"
  exit 0
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

echo "prepackage: installing $pkg@$version"
# --os/--cpu let a macOS or ARM workstation fetch the linux-x64 build the Flex host needs.
npm install --prefix "$stage" --no-save --no-audit --no-fund --loglevel=error \
  --os=linux --cpu=x64 "$pkg@$version"

binary="$stage/node_modules/$pkg/copilot"
if [[ ! -s "$binary" ]]; then
  echo "prepackage: $binary missing after npm install" >&2
  exit 1
fi

mkdir -p bin
install -m 0755 "$binary" "$target"
echo "$version" > "$stamp"
echo "prepackage: $target ($(wc -c < "$target") bytes) from $pkg@$version"
