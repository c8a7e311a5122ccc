#!/bin/sh
# Install hashed locks into /opt/venv (images/requirements/*.txt, every file pinned with sha256), then
# remove the test suites of the big scientific packages, which no step runs and nothing imports
# (about 130 MB in the ML images). Only these packages: other packages' "tests" folders can be
# runtime data (dbt's generic-test macros live in dbt/include/global_project/macros/.../tests).
# Used by every Dockerfile here, in the same RUN as the install, so removed files never reach a layer.
#   tagifai-pip-install LOCK.txt [LOCK.txt ...]
set -eu
for lock in "$@"; do
    set -- "$@" -r "$lock"
    shift
done
pip install --require-hashes --no-deps --no-build-isolation "$@"
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pkg in numpy pandas pyarrow scipy sklearn matplotlib networkx; do
    if [ -d "$site/$pkg" ]; then
        find "$site/$pkg" -type d -name tests -prune -exec rm -rf {} +
    fi
done
