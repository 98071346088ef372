#!/bin/bash
# Cross-node figures of docs/PERFORMANCE.md: subscribers on node B,
# publishers on node A, both on the Redis on 127.0.0.1:6379 (loopback
# only). Server CPU per delivery of A, of B and of redis-server, each
# measured by its own bench run (--pid), ROUNDS rounds, firetower gateways
# against two Centrifugo nodes on the same Redis (CENTRIFUGO: a binary built
# as PERFORMANCE.md's "Centrifugo, built here" says; skipped if absent).
#
#   FT=/path/to/firetower CENTRIFUGO=/path/to/centrifugo OUT=/tmp/cross scripts/cross-perf.sh
set -u
OUT=${OUT:-/tmp/cross}
mkdir -p "$OUT"
cd "$OUT"
ft=${FT:?FT: the firetower binary}
cf=${CENTRIFUGO:-}
redis_pid=$(pgrep -x redis-server | head -1)
args_fanout="--scenario fanout --subs 2000 --window 8 --burst --duration 6s"
args_topics="--scenario topics --conns 5000 --groups 50 --rate 250 --duration 6s"
start_ft() {
  for n in 1 2; do
    FIRETOWER_API_KEY=perf $ft gateway --broker "redis://127.0.0.1:6379?prefix=xperf" --addr 127.0.0.1:1999$n --grpc-addr off \
      --node-id xperf-$n --announce-counts=false >gw$n.log 2>&1 &
    eval "ftpid$n=$!"
  done
  for n in 1 2; do for _ in $(seq 100); do curl -fs http://127.0.0.1:1999$n/readyz >/dev/null 2>&1 && break; sleep 0.1; done; done
}
start_cf() {
  for n in 1 2; do
    cat > cf$n.json <<J
{"client": {"insecure": true, "allowed_origins": ["*"]},
 "http_server": {"address": "127.0.0.1", "port": 1800$n},
 "engine": {"type": "redis", "redis": {"address": ["redis://127.0.0.1:6379"], "prefix": "xperfcf"}},
 "log": {"level": "warn"}}
J
    $cf --config cf$n.json >cf$n.log 2>&1 &
    eval "cfpid$n=$!"
  done
  sleep 3
}
for r in $(seq 1 "${ROUNDS:-2}"); do
  start_ft
  for s in fanout topics; do
    eval "a=\$args_$s"
    for who in A B R; do
      case $who in A) pid=$ftpid1;; B) pid=$ftpid2;; R) pid=$redis_pid;; esac
      $ft bench --url ws://127.0.0.1:19992/ws --pub-url ws://127.0.0.1:19991/ws --pid $pid $a --json ft-$s-$who-$r.json >/dev/null 2>ft-$s-$who-$r.log || echo "fail ft $s $who $r"
    done
  done
  kill $ftpid1 $ftpid2; wait $ftpid1 $ftpid2 2>/dev/null
  [ -x "$cf" ] || continue
  start_cf
  for s in fanout topics; do
    eval "a=\$args_$s"
    for who in A B R; do
      case $who in A) pid=$cfpid1;; B) pid=$cfpid2;; R) pid=$redis_pid;; esac
      $ft bench --protocol centrifugo --url ws://127.0.0.1:18002/connection/websocket --pub-url ws://127.0.0.1:18001/connection/websocket --pid $pid $a --json cf-$s-$who-$r.json >/dev/null 2>cf-$s-$who-$r.log || echo "fail cf $s $who $r"
    done
  done
  kill $cfpid1 $cfpid2; wait $cfpid1 $cfpid2 2>/dev/null
done
echo done
