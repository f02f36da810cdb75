#!/usr/bin/env bash
# Makes the base images that Dockerfile and compose.yaml name, from Debian
# packages, for machines that have podman but no image registry: each is a
# debootstrap root imported into podman and tagged with the name the files use,
# so the Dockerfile and compose.yaml stay the ones users run with Docker.
#
#   python:3.11.13-slim-bookworm  Debian 12 with python3 3.11 and venv
#   nginx:1.27.5-alpine           Debian 13's nginx, configured like the official
#                                 image (conf.d/default.conf serving /usr/share/nginx/html)
#   rabbitmq:4.0.5-alpine         Debian 13's rabbitmq-server 4.0.5
#   previewer-tester:trixie       Debian 13 with python3 3.13, nginx and RabbitMQ
#                                 4.0.5: the test suite's second platform (make test-py313)
#
# Stand-ins, not the official images: the same names and the parts the project
# uses (paths, commands, health-check tools), not the same files. Each image
# carries the hash of this script as a label and is made again only when it is
# missing or the script has changed. Needs root, podman and debootstrap
# (scripts/install-system-deps.sh). A few minutes when nothing is cached; the
# debootstrap roots are kept in $WORK (about 700 MB) for the next change.
set -euo pipefail

PODMAN=(podman)
CONTAINERS_CONF="$(cd "$(dirname "$0")/.." && pwd)/tests/container/containers.conf"
export CONTAINERS_CONF
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HASH="$(sha256sum "$0" | cut -c1-16)"
LABEL="org.previewer.base-script"
WORK="${BASE_IMAGES_WORK:-/var/tmp/previewer-base-images}"

PYTHON_IMAGE="docker.io/library/python:3.11.13-slim-bookworm"
NGINX_IMAGE="docker.io/library/nginx:1.27.5-alpine"
RABBITMQ_IMAGE="docker.io/library/rabbitmq:4.0.5-alpine"
TESTER_IMAGE="localhost/previewer-tester:trixie"

current() {  # is image $1 present and made by this version of the script?
  local found
  found="$("${PODMAN[@]}" image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null)" \
    || return 1
  [ "$found" = "$HASH" ]
}

# A Debian root: SUITE debootstrapped with PACKAGES into $WORK, kept there and
# reused while the suite and the package list stay the same (debootstrap is
# most of this script's time), then made ready for apt and pip inside builds.
make_root() {
  local suite=$1 packages=$2
  local key
  key="$(printf '%s %s' "$suite" "$packages" | sha256sum | cut -c1-12)"
  root="$WORK/$suite-$key"
  if [ ! -e "$root/.debootstrap-done" ]; then
    rm -rf "$root"
    mkdir -p "$root"
    echo "base images: debootstrap $suite (about a minute)"
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$MIRROR" \
      >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; return 1; }
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    touch "$root/.debootstrap-done"
  fi
  # pip and apt inside an image build reach the package registries only with these
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}

import_root() {  # DIR IMAGE CHANGE...
  local dir=$1 image=$2
  shift 2
  local changes=(--change "LABEL $LABEL=$HASH")
  for change in "$@"; do changes+=(--change "$change"); done
  local old
  old="$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  tar -C "$dir" --exclude ./.debootstrap-done -c . \
    | "${PODMAN[@]}" import --quiet "${changes[@]}" - "$image" >/dev/null
  # the image it replaces, unless something still uses it
  [ -z "$old" ] || "${PODMAN[@]}" rmi "$old" >/dev/null 2>&1 || true
  echo "base images: made $image"
}

want=()
for image in "$PYTHON_IMAGE" "$NGINX_IMAGE" "$RABBITMQ_IMAGE" "$TESTER_IMAGE"; do
  current "$image" || want+=("$image")
done
if [ ${#want[@]} -eq 0 ]; then
  echo "base images: cached (script $HASH)"
  exit 0
fi
mkdir -p "$WORK"

if [[ " ${want[*]} " == *" $PYTHON_IMAGE "* ]]; then
  make_root bookworm python3,python3-venv,python-is-python3,ca-certificates
  import_root "$root" "$PYTHON_IMAGE" \
    'ENV LANG=C.UTF-8' 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'CMD ["python3"]'
fi

if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != " $PYTHON_IMAGE " ]]; then
  make_root trixie \
    python3,python3-venv,python-is-python3,ca-certificates,nginx-light,wget,rabbitmq-server,iproute2,openssl,procps
  # nginx as the official image lays it out: one server in conf.d serving
  # /usr/share/nginx/html on port 80, logs to the container's output
  rm -f "$root/etc/nginx/sites-enabled/default"
  mkdir -p "$root/usr/share/nginx/html" "$root/etc/nginx/conf.d"
  cat >"$root/etc/nginx/conf.d/default.conf" <<'EOF'
server {
    listen 80;
    location / {
        root /usr/share/nginx/html;
        index index.html;
    }
}
EOF
  ln -sf /dev/stdout "$root/var/log/nginx/access.log"
  ln -sf /dev/stderr "$root/var/log/nginx/error.log"
  # RabbitMQ run by root from its real scripts, data and cookie in /var/lib/rabbitmq
  mkdir -p "$root/etc/rabbitmq"
  printf 'loopback_users = none\nlog.console = true\nlog.file = false\n' \
    >"$root/etc/rabbitmq/rabbitmq.conf"
  common=('ENV LANG=C.UTF-8' 'ENV PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  import_root "$root" "$NGINX_IMAGE" "${common[@]}" 'STOPSIGNAL SIGQUIT' \
    'CMD ["nginx", "-g", "daemon off;"]'
  import_root "$root" "$RABBITMQ_IMAGE" "${common[@]}" 'ENV HOME=/var/lib/rabbitmq' \
    'CMD ["rabbitmq-server"]'
  import_root "$root" "$TESTER_IMAGE" "${common[@]}" 'CMD ["python3"]'
fi
