#!/usr/bin/env bash
# Installs the Debian packages the test suite needs: nginx (the static origin),
# docker-compose 1.29 (validates compose.yaml without a container engine),
# chromium (the playground's browser tests, driven by playwright) and
# rabbitmq-server (the broker of broker mode, run by the tests as a private node).
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# the lock timeout: another apt run (unattended upgrades, a parallel build) may hold it
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}"
