#!/usr/bin/env bash
# Regenerates the Go code of proto/ into pushapi/pb. Needs protoc (Debian's
# protobuf-compiler); the plugins are the module's tools (go.mod "tool"),
# so their versions are pinned there. The generated code is committed:
# building firetower needs no protoc.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" go install google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
protoc -I proto \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out=. --go_opt=module=github.com/firetower-go/firetower \
	--go-grpc_out=. --go-grpc_opt=module=github.com/firetower-go/firetower \
	proto/firetower/v1/push.proto
