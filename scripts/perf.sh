#!/usr/bin/env bash
# The figures of docs/PERFORMANCE.md: every scenario of issue 8 against
# firetower (the default `firetower serve`), the machine floor, the gorilla
# chat-example hub and the nbio hub, interleaved round by round so that all
# of them see the same machine, RUNS rounds (default 3), then a table of
# medians with min-max. Loopback only; every run is bounded by bench's own
# limits.
#
#   scripts/perf.sh                 # all scenarios, all servers, 3 rounds
#   RUNS=5 SCENARIOS="fanout rate" scripts/perf.sh
#   SERVERS="serve floor gorilla" scripts/perf.sh   # a subset of the servers
#   CROSS=1 scripts/perf.sh         # also cross-node fan-out via tm, Redis, NATS
#
# Output: the JSON of every run in $OUT (default /tmp/firetower-perf) and
# the markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-"idle fanout rate topics churn"}
SERVERS=${SERVERS:-"serve floor gorilla nbio"}
OUT=${OUT:-/tmp/firetower-perf}
DURATION=${DURATION:-10s}
mkdir -p "$OUT"
rm -f "$OUT"/*.json

go build -o "$OUT/firetower" ./cmd/firetower
ft="$OUT/firetower"

servers_for() {
	local k
	for k in $SERVERS; do
		# The floor has no idle figure: the kernel's only.
		[ "$1" = idle ] && [ "$k" = floor ] && continue
		echo "$k"
	done
}

run_one() { # scenario server round
	local s=$1 k=$2 r=$3 args=()
	case $s in
	idle) args=(--conns 10000) ;;
	fanout) args=(--subs 2000 --window 8 --burst) ;;
	rate) args=(--subs 2000 --rate 10) ;;
	topics) args=(--conns 5000 --groups 50 --rate 250) ;;
	churn) args=(--conns 100) ;;
	esac
	echo "== $s / $k / round $r" >&2
	"$ft" bench --spawn "$k" --scenario "$s" --duration "$DURATION" "${args[@]}" \
		--json "$OUT/$s-$k-$r.json" >/dev/null 2>"$OUT/$s-$k-$r.log" ||
		{ echo "bench failed: $s $k round $r" >&2; tail -5 "$OUT/$s-$k-$r.log" >&2; }
}

for r in $(seq 1 "$RUNS"); do
	for s in $SCENARIOS; do
		for k in $(servers_for "$s"); do
			run_one "$s" "$k" "$r"
		done
	done
done

# Cross-node: subscribers on gateway B, the publisher on gateway A, through
# a topic manager, Redis or NATS (which must be running on 6379 / 4222).
if [ "${CROSS:-0}" = 1 ]; then
	for b in tm redis nats; do
		pids=()
		case $b in
		tm)
			"$ft" topicmanager --addr 127.0.0.1:16666 >"$OUT/tm.log" 2>&1 &
			pids+=($!)
			url=tm://127.0.0.1:16666
			;;
		redis) url=redis://127.0.0.1:6379/0?prefix=perf ;;
		nats) url=nats://127.0.0.1:4222?prefix=perf ;;
		esac
		for n in 1 2; do
			FIRETOWER_API_KEY=perf "$ft" gateway --broker "$url" --addr 127.0.0.1:1999$n --grpc-addr off \
				--node-id perf-$n --announce-counts=false >"$OUT/gw$n-$b.log" 2>&1 &
			pids+=($!)
		done
		for n in 1 2; do
			for _ in $(seq 100); do
				curl -fs "http://127.0.0.1:1999$n/readyz" >/dev/null 2>&1 && break
				sleep 0.1
			done
		done
		for r in $(seq 1 "$RUNS"); do
			echo "== cross / $b / round $r" >&2
			"$ft" bench --url ws://127.0.0.1:19992/ws --pub-url ws://127.0.0.1:19991/ws --pid "${pids[-1]}" \
				--scenario fanout --subs 2000 --window 8 --burst --duration "$DURATION" \
				--json "$OUT/cross-$b-$r.json" >/dev/null 2>"$OUT/cross-$b-$r.log" ||
				{ echo "bench failed: cross $b round $r" >&2; tail -5 "$OUT/cross-$b-$r.log" >&2; }
		done
		kill "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	done
fi

# The table: median [min-max] of each figure over the rounds.
stat() { # files... -> "median [min-max]" of the jq expression $EXPR
	jq -s "[.[] | $EXPR] | sort | if length == 0 then \"-\" else
		(.[(length-1)/2|floor] * 100 | round / 100 | tostring) + \" [\" +
		(.[0] * 100 | round / 100 | tostring) + \"-\" + (.[-1] * 100 | round / 100 | tostring) + \"]\" end" -r "$@"
}
sum() { jq -s "[.[] | $EXPR] | add" -r "$@"; }

echo "| scenario | server | figure (median [min-max] of $RUNS) | p99 latency ms | deliveries/s | lost+dup+wrong |"
echo "|---|---|---|---|---|---|"
for s in $SCENARIOS; do
	for k in $(servers_for "$s"); do
		files=("$OUT/$s-$k-"*.json)
		[ -e "${files[0]}" ] || continue
		if [ "$s" = idle ]; then
			fig="$(EXPR='.rss_per_conn_bytes / 1024' stat "${files[@]}") KiB RSS/conn"
		elif [ "$s" = churn ]; then
			fig="$(EXPR='.connects_per_s' stat "${files[@]}") connects/s, $(EXPR='.server_cpu_seconds * 1e6 / (.connects_per_s * .measured_seconds)' stat "${files[@]}") µs CPU/connect"
		else
			fig="$(EXPR='.server_cpu_us_per_delivery' stat "${files[@]}") µs CPU/delivery"
		fi
		p99=$(EXPR='.latency_us.p99 / 1000' stat "${files[@]}")
		rate=$(EXPR='.deliveries_per_s' stat "${files[@]}")
		bad=$(EXPR='.lost + .duplicates + .wrong' sum "${files[@]}")
		echo "| $s | $k | $fig | $p99 | $rate | $bad |"
	done
done
if [ "${CROSS:-0}" = 1 ]; then
	for b in tm redis nats; do
		files=("$OUT/cross-$b-"*.json)
		[ -e "${files[0]}" ] || continue
		fig="$(EXPR='.server_cpu_us_per_delivery' stat "${files[@]}") µs CPU/delivery (receiving gateway)"
		p99=$(EXPR='.latency_us.p99 / 1000' stat "${files[@]}")
		rate=$(EXPR='.deliveries_per_s' stat "${files[@]}")
		bad=$(EXPR='.lost + .duplicates + .wrong' sum "${files[@]}")
		echo "| cross-node fanout via $b | serve x2 | $fig | $p99 | $rate | $bad |"
	done
fi
