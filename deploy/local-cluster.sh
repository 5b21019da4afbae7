#!/usr/bin/env bash
# A local Tessera cluster on one machine: one etcd, a standalone source and three nodes, each
# in its own data dir under $TESSERA_CLUSTER_DIR (default ./tessera-cluster), logs beside them.
#
#   deploy/local-cluster.sh start    # build if needed, start everything, wait until it answers
#   deploy/local-cluster.sh status   # what runs
#   deploy/local-cluster.sh stop     # SIGTERM everything (nodes leave the cluster cleanly)
#
# TESSERA_SECURE=1 starts it secured: a development CA (tessera cert) under $DIR/tls, etcd
# over TLS with client certificates, the source over TLS accepting only certificates of the
# CA, nodes with mutual TLS, --auth required and --dial-allow for the source. The admin key is
# in $DIR/admin.key; a client certificate for curl in $DIR/tls/clients/ops.pem (.key).
#
# Ports: etcd 2379 (peer 2380), source 9200, nodes 9101 9102 9103 (zones a, b, c). Override
# with ETCD_PORT, SOURCE_PORT, NODE_PORTS="9101 9102 9103". TESSERA_BIN picks the binary
# (default: a release build of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${TESSERA_CLUSTER_DIR:-tessera-cluster}"
ETCD_PORT="${ETCD_PORT:-2379}"
SOURCE_PORT="${SOURCE_PORT:-9200}"
read -r -a NODE_PORTS <<< "${NODE_PORTS:-9101 9102 9103}"
CFG="etcd://127.0.0.1:${ETCD_PORT}/local"
SECURE="${TESSERA_SECURE:-}"
TLS="$DIR/tls"

die() { echo "local-cluster: $*" >&2; exit 1; }

wait_for() { # URL WHAT LOG
  local tls_args=()
  if [[ "$1" == https://* ]]; then
    tls_args=(--cacert "$TLS/ca/ca.pem" --cert "$TLS/clients/ops.pem" --key "$TLS/clients/ops.key")
  fi
  for _ in $(seq 1 100); do
    if curl -fsS "${tls_args[@]}" -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "$2 did not answer at $1; see $3"
}

start_bg() { # NAME COMMAND...
  local name="$1"; shift
  if [[ -f "$DIR/$name.pid" ]] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
    echo "$name already runs (pid $(cat "$DIR/$name.pid"))"
    return
  fi
  "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
  echo "$name started (pid $!, log $DIR/$name.log)"
}

start() {
  command -v etcd >/dev/null || die "etcd is missing: apt-get install -y etcd-server (or put etcd on PATH)"
  command -v curl >/dev/null || die "curl is missing: apt-get install -y curl"
  local bin="${TESSERA_BIN:-}"
  if [[ -z "$bin" ]]; then
    scripts/deps.sh build
    cargo build --release --bin tessera
    bin="${CARGO_TARGET_DIR:-target}/release/tessera"
  fi
  mkdir -p "$DIR"
  local scheme=http etcd_tls=() source_tls=() cfg="$CFG" global=()
  if [[ -n "$SECURE" ]]; then
    scheme=https
    cfg="etcds://127.0.0.1:${ETCD_PORT}/local"
    [[ -f "$TLS/ca/ca.key" ]] || "$bin" cert ca --out "$TLS/ca" --name local
    "$bin" cert node --ca "$TLS/ca" --uuid etcd --host 127.0.0.1 --out "$TLS/etcd" >/dev/null
    "$bin" cert node --ca "$TLS/ca" --uuid source --host 127.0.0.1 --out "$TLS/source" >/dev/null
    "$bin" cert client --ca "$TLS/ca" --name tessera --out "$TLS/clients" >/dev/null
    "$bin" cert client --ca "$TLS/ca" --name ops --out "$TLS/clients" >/dev/null
    etcd_tls=(--cert-file "$TLS/etcd/node.pem" --key-file "$TLS/etcd/node.key"
      --trusted-ca-file "$TLS/ca/ca.pem" --client-cert-auth
      --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 2))")
    source_tls=(--tls-cert "$TLS/source/node.pem" --tls-key "$TLS/source/node.key"
      --tls-client-ca "$TLS/ca/ca.pem")
    global=(--etcd-ca "$TLS/ca/ca.pem" --etcd-cert "$TLS/clients/tessera.pem"
      --etcd-key "$TLS/clients/tessera.key")
  fi
  start_bg etcd etcd --name local --data-dir "$DIR/etcd" \
    --listen-client-urls "${scheme}://127.0.0.1:${ETCD_PORT}" \
    --advertise-client-urls "${scheme}://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "local=http://127.0.0.1:$((ETCD_PORT + 1))" "${etcd_tls[@]}"
  if [[ -n "$SECURE" ]]; then
    wait_for "http://127.0.0.1:$((ETCD_PORT + 2))/health" etcd "$DIR/etcd.log"
  else
    wait_for "http://127.0.0.1:${ETCD_PORT}/health" etcd "$DIR/etcd.log"
  fi
  start_bg source "$bin" --data-dir "$DIR/source" source --bind "127.0.0.1:${SOURCE_PORT}" "${source_tls[@]}"
  wait_for "${scheme}://127.0.0.1:${SOURCE_PORT}/api/source" source "$DIR/source.log"
  local zones=(a b c d e f g h)
  local i=0
  for port in "${NODE_PORTS[@]}"; do
    local node_tls=()
    if [[ -n "$SECURE" ]]; then
      [[ -f "$DIR/node-$port/tls/node.pem" ]] ||
        "$bin" --data-dir "$DIR/node-$port" cert node --ca "$TLS/ca" --host 127.0.0.1 >/dev/null
      node_tls=(--auth required --tls-cert "$DIR/node-$port/tls/node.pem"
        --tls-key "$DIR/node-$port/tls/node.key" --tls-client-ca "$TLS/ca/ca.pem"
        --dial-allow "127.0.0.1:${SOURCE_PORT}")
    fi
    start_bg "node-$port" "$bin" --cfg "$cfg" "${global[@]}" --data-dir "$DIR/node-$port" node \
      --bind "127.0.0.1:$port" --group "zone-${zones[$((i % 8))]}" "${node_tls[@]}"
    i=$((i + 1))
    # The first node makes the bootstrap admin key; the others find it.
    if [[ -n "$SECURE" && $i -eq 1 ]]; then
      wait_for "${scheme}://127.0.0.1:$port/api/ping" "node on $port" "$DIR/node-$port.log"
    fi
  done
  for port in "${NODE_PORTS[@]}"; do
    wait_for "${scheme}://127.0.0.1:$port/api/ping" "node on $port" "$DIR/node-$port.log"
  done
  if [[ -n "$SECURE" && -f "$DIR/node-${NODE_PORTS[0]}/bootstrap-admin.key" ]]; then
    install -m 600 "$DIR/node-${NODE_PORTS[0]}/bootstrap-admin.key" "$DIR/admin.key"
  fi
  echo "cluster up: nodes ${NODE_PORTS[*]}, source ${SOURCE_PORT}, etcd ${ETCD_PORT} (Cfg $cfg)"
  if [[ -n "$SECURE" ]]; then
    echo "secured: tessera ctl --node 127.0.0.1:${NODE_PORTS[0]} --ca-cert $TLS/ca/ca.pem --api-key-file $DIR/admin.key ..."
  fi
}

status() {
  for pidfile in "$DIR"/*.pid; do
    [[ -e "$pidfile" ]] || { echo "nothing started in $DIR"; return; }
    local name; name="$(basename "$pidfile" .pid)"
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "$name: running (pid $(cat "$pidfile"))"
    else echo "$name: stopped"; fi
  done
}

stop() {
  # Nodes first (they revoke their leases in etcd), then the source, then etcd.
  local order=()
  for pidfile in "$DIR"/node-*.pid; do [[ -e "$pidfile" ]] && order+=("$pidfile"); done
  for name in source etcd; do [[ -e "$DIR/$name.pid" ]] && order+=("$DIR/$name.pid"); done
  for pidfile in "${order[@]}"; do
    local pid; pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    echo "$(basename "$pidfile" .pid) stopped"
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|status|stop" ;;
esac
