#!/usr/bin/env bash
# Installs what `make bench` needs (each step skipped when its result is there):
#   - Debian packages: wrk, nginx with its image_filter module, and the three
#     wallpaper packages whose photographs make the corpus;
#   - the crops stage's photo set (bench/faceset.py --download);
#   - thumbor in its own venv, bench/.work/thumbor-venv, apart from previewer's
#     dependencies; BENCH_THUMBOR=0 skips it (`make demo-scale` needs none).
# matplotlib and psutil come with the project's .venv (pyproject.toml's `bench` extra).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
work="$here/.work"
python="${PYTHON:-python3}"
thumbor_version="${THUMBOR_VERSION:-7.8.0}"
mkdir -p "$work"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "bench setup: need root or sudo" >&2; exit 1; }
  sudo="sudo"
fi

packages=(
  wrk
  nginx-light
  libnginx-mod-http-image-filter
  lomiri-wallpapers
  mate-backgrounds
  plasma-workspace-wallpapers
)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# the photo set of the crops stage; apt-get download needs fresh package lists
if [ ! -e "$work/faces-dist/opencv-doc_4.6.0+dfsg-12_all.deb" ]; then
  $sudo apt-get update -qq
fi
venv_python="$here/../.venv/bin/python"
[ -x "$venv_python" ] || venv_python="$python"
"$venv_python" "$here/faceset.py" --download

thumbor_venv="$work/thumbor-venv"
thumbor_log="$work/thumbor-install.log"
if [ "${BENCH_THUMBOR:-1}" = 1 ] && { ! "$thumbor_venv/bin/thumbor" --help >/dev/null 2>&1 \
  || ! "$thumbor_venv/bin/python" -c "import pycurl" >/dev/null 2>&1; }; then
  # pycurl: thumbor advises it for its HTTP loader (it warns without it)
  echo "bench setup: installing thumbor $thumbor_version and pycurl into $thumbor_venv"
  rm -rf "$thumbor_venv"
  if "$python" -m venv "$thumbor_venv" >"$thumbor_log" 2>&1 \
    && "$thumbor_venv/bin/pip" install --quiet --upgrade pip >>"$thumbor_log" 2>&1 \
    && "$thumbor_venv/bin/pip" install --quiet "thumbor==$thumbor_version" pycurl \
      >>"$thumbor_log" 2>&1 \
    && "$thumbor_venv/bin/thumbor" --help >>"$thumbor_log" 2>&1; then
    :
  else
    # not fatal: bench/run.py reports thumbor as not run, with this log's tail
    echo "bench setup: thumbor could not be installed; see $thumbor_log" >&2
    tail -5 "$thumbor_log" >&2
  fi
fi

echo "bench setup: ready"
