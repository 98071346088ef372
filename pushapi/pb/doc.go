// Package pb is the Go code generated from proto/firetower/v1/push.proto:
// the messages and the PushService client and server interfaces of the
// gRPC push API. Do not edit push.pb.go or push_grpc.pb.go; change the
// .proto and run go generate (scripts/genproto.sh, needs protoc).
package pb

//go:generate ../../scripts/genproto.sh
