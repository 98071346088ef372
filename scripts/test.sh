#!/usr/bin/env bash
# The whole test suite. It first makes sure that what the tests need is
# installed and running (probing before installing or starting anything),
# then checks formatting and vet, and runs every test with the race
# detector. Safe to run again: nothing already present is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
	for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.1; done
	echo "port $1 did not open" >&2
	return 1
}

ensure_go() {
	command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
	go version
}

# Redis and NATS on their standard ports, as the broker tests expect.
# The binaries are needed even when the ports are taken: the restart tests
# run private servers of their own.
ensure_redis() {
	command -v redis-server >/dev/null || apt_install redis-server
	if port_open 6379; then log "redis: already listening on 6379"; return; fi
	redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
	wait_port 6379
	log "redis: started on 6379"
}

ensure_nats() {
	command -v nats-server >/dev/null || apt_install nats-server
	if port_open 4222; then log "nats: already listening on 4222"; return; fi
	# max_payload above the default 1 MiB: a 1 MiB message plus the broker's
	# envelope must fit (docs/operations.md, NATS).
	printf 'max_payload: 2MB\n' >/tmp/firetower-nats.conf
	nohup nats-server -a 127.0.0.1 -p 4222 -c /tmp/firetower-nats.conf >/tmp/firetower-nats.log 2>&1 &
	wait_port 4222
	log "nats: started on 4222"
}

# Debian's chromium for the browser tests: playwright cannot download a
# browser on these machines.
ensure_chromium() {
	if [ -x /usr/bin/chromium ]; then
		log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
		return
	fi
	apt_install chromium
	[ -x /usr/bin/chromium ] || { echo "apt-get installed no /usr/bin/chromium" >&2; exit 1; }
	log "chromium: installed $(/usr/bin/chromium --version 2>/dev/null)"
}

# playwright-core for the browser tests, exactly as locked. npm ci runs only
# when node_modules is missing or was installed from other manifests.
ensure_node_modules() {
	local dir=test/browser
	if ! command -v node >/dev/null || ! node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)'; then
		echo "node >= 20 is needed for the browser tests (playwright-core)" >&2
		exit 1
	fi
	local want have=""
	want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
	[ -f "$dir/node_modules/.firetower-manifests" ] && have=$(cat "$dir/node_modules/.firetower-manifests")
	if [ "$want" = "$have" ] && [ -d "$dir/node_modules/playwright-core" ]; then
		log "node_modules: up to date"
		return
	fi
	log "npm ci in $dir"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	echo "$want" >"$dir/node_modules/.firetower-manifests"
}

ensure_go
ensure_redis
ensure_nats
ensure_chromium
ensure_node_modules

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

# The gRPC code in pushapi/pb is generated and committed; where protoc is
# installed, check that it matches proto/ (builds never need protoc).
if command -v protoc >/dev/null; then
	log "generated gRPC code is up to date"
	./scripts/genproto.sh
	git diff --exit-code --stat -- pushapi/pb || { echo "pushapi/pb differs from proto/: run scripts/genproto.sh and commit"; exit 1; }
fi

log "go vet"
go vet ./...

log "go build (examples included)"
go build ./...

log "go test -race"
# The Redis and NATS tests fail, rather than skip, when a server is missing.
export FIRETOWER_REQUIRE_SERVICES=1
go test -race -count=1 -timeout 30m ./...

# The gateway's suite once more on the netpoll transport (the server's
# default; the library's default is goroutines): both pass the same tests.
log "go test -race ./gateway/ on the netpoll transport"
FIRETOWER_TEST_TRANSPORT=netpoll go test -race -count=1 -timeout 10m ./gateway/

# Every benchmark once, so that none stops compiling or running; figures
# come from docs/PERFORMANCE.md's commands, not from here.
log "benchmarks, one iteration each"
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./... >/tmp/firetower-bench.log 2>&1 ||
	{ cat /tmp/firetower-bench.log; echo "a benchmark failed"; exit 1; }
grep -c '^Benchmark' /tmp/firetower-bench.log | xargs printf '%s benchmark results\n'

# Every fuzz target, briefly: its committed corpus already ran as part of
# go test; this looks a little further (FIRETOWER_FUZZTIME per target). The
# budget is a count of executions, not a duration: Go 1.26's fuzzing
# coordinator can report a spurious "context deadline exceeded" when a
# duration runs out (go.dev/issue/75804, fixed in Go 1.27).
FIRETOWER_FUZZTIME=${FIRETOWER_FUZZTIME:-200000x}
log "fuzz ($FIRETOWER_FUZZTIME per target)"
grep -l '^func Fuzz' $(git ls-files '*_test.go') | xargs -n1 dirname | sort -u | while read -r dir; do
	for target in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FIRETOWER_FUZZTIME" "./$dir" >/tmp/firetower-fuzz.log 2>&1 ||
			{ cat /tmp/firetower-fuzz.log; echo "fuzz target $target in ./$dir failed"; exit 1; }
		echo "fuzz ./$dir $target: ok"
	done
done

# The chat page and firetower.js in chromium against the real binary
# (test/browser, node's test runner; screenshots go to test-artifacts/).
log "browser tests"
(cd test/browser && timeout 900 node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs)
