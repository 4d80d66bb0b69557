#!/usr/bin/env bash
# Build the Linux app folder and archive, then run the frozen app's self-test headless.
#
#   packaging/build.sh            # dist/Studio/ and dist/Studio-<version>-linux-x86_64.tar.gz
#
# Environment: STUDIO_VARIANT=cpu|cuda (default cpu; see packaging/studio.spec),
# STUDIO_MODELS_FROM=folder with studio-shapes/ (default: resources/models),
# SKIP_SELF_TEST=1 to only build, SKIP_ARCHIVE=1 to leave out the tar.gz (CI does).
# Needs `pip install -e ".[package]"`.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(python -c "import studio; print(studio.__version__)")
variant=${STUDIO_VARIANT:-cpu}
archive="dist/Studio-${version}-linux-x86_64${variant/cpu/}.tar.gz"
archive=${archive/x86_64cuda/x86_64-cuda}

start=$(date +%s)
python -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/studio.spec
built=$(date +%s)

# The archive keeps the folder name, so it unpacks to Studio/.
if [[ "${SKIP_ARCHIVE:-}" != 1 ]]; then
    tar -C dist -czf "$archive" Studio
fi
archived=$(date +%s)

status=0
if [[ "${SKIP_SELF_TEST:-}" != 1 ]]; then
    # Headless: no display, and no network either would be fine (everything is offline).
    env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen dist/Studio/Studio --self-test \
        || status=$?
fi
tested=$(date +%s)

echo
echo "build time:      $((built - start)) s (PyInstaller), archive $((archived - built)) s, self-test $((tested - archived)) s"
echo "folder size:     $(du -sh dist/Studio | cut -f1) (dist/Studio, $(find dist/Studio -type f | wc -l) files)"
if [[ "${SKIP_ARCHIVE:-}" != 1 ]]; then
    echo "archive size:    $(du -sh "$archive" | cut -f1) ($archive)"
fi
if [[ "${SKIP_SELF_TEST:-}" != 1 ]]; then
    echo "self-test:       $([[ $status == 0 ]] && echo passed || echo "FAILED (exit $status)")"
fi
exit "$status"
