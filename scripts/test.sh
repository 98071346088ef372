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
ensure_redis() {
	if port_open 6379; then log "redis: already listening on 6379"; return; fi
	command -v redis-server >/dev/null || apt_install redis-server
	redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
	wait_port 6379
	log "redis: started on 6379"
}

ensure_nats() {
	if port_open 4222; then log "nats: already listening on 4222"; return; fi
	command -v nats-server >/dev/null || apt_install nats-server
	nohup nats-server -a 127.0.0.1 -p 4222 >/tmp/firetower-nats.log 2>&1 &
	wait_port 4222
	log "nats: started on 4222"
}

ensure_go
ensure_redis
ensure_nats

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

log "go vet"
go vet ./...

log "go build (examples included)"
go build ./...

log "go test -race"
go test -race -count=1 -timeout 30m ./...
