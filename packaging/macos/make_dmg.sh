#!/usr/bin/env bash
# Wrap dist/Studio.app in a compressed disk image with an Applications shortcut.
#
#   packaging/macos/make_dmg.sh [VERSION]     # -> dist/Studio-<version>-macos-<arch>.dmg
#
# Run after `pyinstaller packaging/studio.spec` on macOS. The app is ad-hoc signed only: without
# a Developer ID and notarisation, users open it the first time with right-click > Open.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${1:-$(python -c "import studio; print(studio.__version__)")}
app=dist/Studio.app
dmg="dist/Studio-${version}-macos-$(uname -m).dmg"
[[ -d "$app" ]] || { echo "error: $app not found; build it first" >&2; exit 1; }

# Ad-hoc signature: Apple silicon refuses to run unsigned arm64 code at all.
codesign --force --deep --sign - "$app"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
rm -f "$dmg"
hdiutil create -volname "Studio" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
echo "$dmg"
