#!/usr/bin/env bash
# The unit and integration tests on Debian 13: Python 3.13, and RabbitMQ 4.0.5
# for the broker tests (tests/integration/test_broker*.py and every test that
# runs in broker mode). They run in the image previewer-tester:trixie
# (scripts/base-images.sh) with this checkout mounted at its own path and the
# host's network; the virtual environment is .venv-py313 in the checkout, made
# again when pyproject.toml changes. The browser tests stay with the main run.
# Arguments, if any, replace the test paths: scripts/test-py313.sh -x tests/unit
set -euo pipefail
cd "$(dirname "$0")/.."
CONTAINERS_CONF="$PWD/tests/container/containers.conf"
export CONTAINERS_CONF
[ $# -gt 0 ] || set -- tests/unit tests/integration tests/bench
# the host's open-file limit, as the main run has it (a process limit above a
# few thousand is refused by the runtime; root is not held to it anyway);
# SYS_ADMIN: the full-disk test mounts a small tmpfs, as it does on the host
files=$(ulimit -Hn)
exec podman run --rm --network host --cap-add SYS_ADMIN --ulimit "nofile=$files:$files" --ulimit nproc=4096:4096 \
  --volume "$PWD:$PWD" --workdir "$PWD" --env CI="${CI:-}" --env HOME=/root \
  --env PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}" \
  localhost/previewer-tester:trixie bash -euo pipefail -c '
    venv=.venv-py313
    if [ ! -e $venv/.installed ] || [ pyproject.toml -nt $venv/.installed ]; then
      rm -rf $venv
      python3 -m venv $venv
      $venv/bin/pip install --quiet --upgrade pip
      $venv/bin/pip install --quiet -e ".[dev,bench]"
      touch $venv/.installed
    fi
    $venv/bin/python --version
    /usr/lib/rabbitmq/bin/rabbitmqctl version 2>/dev/null | sed "s/^/RabbitMQ /" || true
    exec $venv/bin/pytest -p no:cacheprovider -m "not browser" "$@"
  ' bash "$@"
