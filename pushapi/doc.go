// Package pushapi is the push API of a firetower node: how a business
// backend publishes to topics, pushes to a client or a user, counts
// subscribers, kicks connections out and reads the cluster's state without
// holding a websocket itself.
//
// Service holds the operations as Go methods (the dashboard calls them
// directly); Service.Handler serves them as an HTTP JSON API under /api/;
// package pushapi/grpcapi serves them over gRPC (proto/firetower/v1/push.proto);
// package pushapi/client is the HTTP client and the `firetower publish`
// command line. Auth protects both transports with one API key
// (internal/apikey). docs/api.md describes the whole API and
// docs/openapi.yaml the HTTP side.
package pushapi
