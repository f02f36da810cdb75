#!/usr/bin/env bash
# Installs the Debian packages the test suite needs: nginx (the static origin),
# docker-compose 1.29 (validates compose.yaml without a container engine),
# chromium (the playground's browser tests, driven by playwright) and
# rabbitmq-server (the broker of broker mode, run by the tests as a private node),
# and what `make container-check` needs to build and run the image: podman with
# runc, netavark and aardvark-dns (bridge networks that resolve compose's
# service names), iptables (netavark sets up a bridge network's rules with it:
# without it a compose container stays Created, and podman-compose still exits
# 0), debootstrap (the stand-in base images, made from Debian packages by
# scripts/base-images.sh) and podman-compose (brings compose.yaml up).
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v podman-compose >/dev/null 2>&1 || need+=(podman-compose)
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
command -v fuse-overlayfs >/dev/null 2>&1 || need+=(fuse-overlayfs)
command -v slirp4netns >/dev/null 2>&1 || need+=(slirp4netns)
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need+=(iptables)

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
