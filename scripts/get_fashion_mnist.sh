#!/usr/bin/env bash
# Installs Fashion-MNIST (IDX files) from the Debian package `dataset-fashion-mnist`.
#
# Idempotent: does nothing when /usr/share/datasets/fashion-mnist already holds the four
# IDX files. Otherwise runs `apt-get update` once and `apt-get install -y`, through sudo
# when not root. jaxsnn.data reads the files with `config.dataset = "fashion_mnist"`
# (the default folder when `config.local_dir` is not set) and converts them once into a TFDS
# array_record dataset.
#
# Usage: scripts/get_fashion_mnist.sh
set -euo pipefail

readonly DIR=/usr/share/datasets/fashion-mnist
readonly PACKAGE=dataset-fashion-mnist
readonly FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte
  t10k-labels-idx1-ubyte)

have_files() {
  local name
  for name in "${FILES[@]}"; do
    [[ -f "${DIR}/${name}" || -f "${DIR}/${name}.gz" ]] || return 1
  done
}

if ! have_files; then
  if [[ "$(id -u)" -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "error: need root or sudo to install ${PACKAGE}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y "${PACKAGE}"
  if ! have_files; then
    echo "error: ${PACKAGE} installed but ${DIR} lacks the IDX files" >&2
    exit 1
  fi
fi

echo "Fashion-MNIST IDX files are in ${DIR}:"
ls -l "${DIR}"
