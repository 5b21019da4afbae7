#!/usr/bin/env bash
# Makes sure what Tessera needs to build and test is installed.
#   scripts/deps.sh build   -> cargo, protoc (proto/ and etcd-client compile .proto files)
#   scripts/deps.sh test    -> the above, plus etcd (tests start real etcd processes), iproute2
#                              (network namespaces for partition tests), nats-server (the
#                              JetStream source's tests), chromium and
#                              chromedriver (the console's browser test) and schemathesis (the
#                              REST fuzzer, from PyPI, pinned)
# As root on Debian/Ubuntu it installs what is missing with apt-get; otherwise it stops with a
# message saying what is missing and how to get it.
set -euo pipefail

need=${1:-build}
missing_pkgs=()
missing_desc=()

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install the Rust toolchain (https://rustup.rs), then re-run." >&2
  exit 1
fi
if ! command -v protoc >/dev/null 2>&1 && [ -z "${PROTOC:-}" ]; then
  missing_pkgs+=(protobuf-compiler); missing_desc+=("protoc (package protobuf-compiler)")
fi
if [ "$need" = test ] && ! command -v etcd >/dev/null 2>&1 && [ -z "${ETCD_BIN:-}" ]; then
  missing_pkgs+=(etcd-server); missing_desc+=("etcd >= 3.4 (package etcd-server, or set ETCD_BIN)")
fi
# Partition and soak tests put hosts in network namespaces.
if [ "$need" = test ] && ! command -v ip >/dev/null 2>&1; then
  missing_pkgs+=(iproute2); missing_desc+=("ip (package iproute2)")
fi
# JetStream source tests start real NATS servers (Debian's nats-server 2.9, in /usr/sbin).
if [ "$need" = test ] && ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ -z "${NATS_SERVER_BIN:-}" ]; then
  missing_pkgs+=(nats-server); missing_desc+=("nats-server >= 2.9 (package nats-server, or set NATS_SERVER_BIN)")
fi
# The console test drives a headless Chromium through chromedriver.
if [ "$need" = test ] && ! command -v chromium >/dev/null 2>&1; then
  missing_pkgs+=(chromium); missing_desc+=("chromium (package chromium)")
fi
if [ "$need" = test ] && ! command -v chromedriver >/dev/null 2>&1; then
  missing_pkgs+=(chromium-driver); missing_desc+=("chromedriver (package chromium-driver)")
fi

if [ ${#missing_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null
    # Debian's etcd-server package may start a system etcd on 2379; tests do not use it.
  else
    echo "error: missing: ${missing_desc[*]}" >&2
    echo "install them (Debian/Ubuntu: sudo apt-get install -y ${missing_pkgs[*]}) and re-run" >&2
    exit 1
  fi
fi

# The REST API fuzzer (node/tests/api_fuzz.rs runs it against a 3-node cluster).
SCHEMATHESIS_VERSION=4.32.5
if [ "$need" = test ]; then
  have=$(schemathesis --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' || true)
  if [ "$have" != "$SCHEMATHESIS_VERSION" ]; then
    if ! command -v python3 >/dev/null 2>&1; then
      echo "error: python3 (with pip) is needed for schemathesis $SCHEMATHESIS_VERSION" >&2
      exit 1
    fi
    echo "installing: schemathesis==$SCHEMATHESIS_VERSION (pip)" >&2
    python3 -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2 || {
      echo "error: could not install schemathesis==$SCHEMATHESIS_VERSION with pip" >&2
      exit 1
    }
  fi
fi

# The S3-compatible server backup tests store snapshots in (moto's server mode, from PyPI, pinned).
MOTO_VERSION=5.2.5
if [ "$need" = test ]; then
  have=$(python3 -c 'import moto, flask; print(moto.__version__)' 2>/dev/null || true)
  if [ "$have" != "$MOTO_VERSION" ]; then
    echo "installing: moto[server]==$MOTO_VERSION (pip)" >&2
    python3 -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2 || {
      echo "error: could not install moto[server]==$MOTO_VERSION with pip" >&2
      exit 1
    }
  fi
fi
