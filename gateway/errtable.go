package gateway

import (
	"context"
	"errors"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/protocol"
)

// The error table: how every error of the gateway, the protocol and the
// brokers is reported, whoever reports it. A v2 client gets the class's V2
// code in its error frame; the push API answers with its HTTP status and
// its name as the error code ({"error":{"code":"unavailable",...}}); the
// gRPC API with its gRPC code. This is the one place that maps errors:
// the push API and its gRPC server read it, they do not map errors
// themselves.

// ErrorClass is one row of the table.
type ErrorClass struct {
	// Name is the push API's error code.
	Name string
	// V2 is the code of a v2 error frame (protocol.Code*).
	V2 int
	// HTTP is the push API's HTTP status.
	HTTP int
	// GRPC is the gRPC status code, numbered as google.golang.org/grpc/codes
	// (the core does not import gRPC; the numbers are fixed by the gRPC
	// specification).
	GRPC uint32
}

// The classes. Those without errors below are given by the push API
// itself (authentication, routing, media type).
var (
	ClassBadRequest           = ErrorClass{"bad_request", protocol.CodeBadRequest, 400, grpcInvalidArgument}
	ClassUnauthenticated      = ErrorClass{"unauthenticated", protocol.CodeUnauthorized, 401, grpcUnauthenticated}
	ClassForbidden            = ErrorClass{"forbidden", protocol.CodeForbidden, 403, grpcPermissionDenied}
	ClassNotFound             = ErrorClass{"not_found", protocol.CodeNotFound, 404, grpcNotFound}
	ClassMethodNotAllowed     = ErrorClass{"method_not_allowed", protocol.CodeBadRequest, 405, grpcUnimplemented}
	ClassTooLarge             = ErrorClass{"too_large", protocol.CodeTooLarge, 413, grpcResourceExhausted}
	ClassUnsupportedMediaType = ErrorClass{"unsupported_media_type", protocol.CodeBadRequest, 415, grpcInvalidArgument}
	ClassInvalidTopic         = ErrorClass{"invalid_topic", protocol.CodeInvalidTopic, 422, grpcInvalidArgument}
	ClassLimitExceeded        = ErrorClass{"limit_exceeded", protocol.CodeLimitExceeded, 429, grpcResourceExhausted}
	ClassInternal             = ErrorClass{"internal", protocol.CodeInternal, 500, grpcInternal}
	ClassUnavailable          = ErrorClass{"unavailable", protocol.CodeUnavailable, 503, grpcUnavailable}
	// ClassUnknownOutcome: the broker had the message when its caller
	// stopped waiting; the other nodes may or may not get it. Retrying may
	// deliver it twice.
	ClassUnknownOutcome = ErrorClass{"unknown_outcome", protocol.CodeUnknownOutcome, 504, grpcDeadlineExceeded}
)

// gRPC status codes (google.golang.org/grpc/codes).
const (
	grpcInvalidArgument   = 3
	grpcDeadlineExceeded  = 4
	grpcNotFound          = 5
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// errorTable lists, in order, the errors of each class: the first row with
// an error that errors.Is finds in the chain gives the class. An unknown
// outcome comes first: it wraps the context error that ended the wait.
var errorTable = []struct {
	class ErrorClass
	errs  []error
}{
	{ClassUnknownOutcome, []error{ErrUnknownOutcome}},
	{ClassInvalidTopic, []error{protocol.ErrTopicEmpty, protocol.ErrTopicTooLong, protocol.ErrTopicInvalid, protocol.ErrNoTopics}},
	{ClassTooLarge, []error{ErrMessageTooLarge, broker.ErrTooLarge}},
	{ClassLimitExceeded, []error{protocol.ErrTooManyTopics, ErrTooManyTopics}},
	{ClassBadRequest, []error{ErrInvalidData, protocol.ErrMalformed, protocol.ErrMissingType, protocol.ErrInvalidData, broker.ErrBadCommand}},
	{ClassUnauthenticated, []error{ErrUnauthorized}},
	{ClassForbidden, []error{ErrOriginNotAllowed}},
	{ClassUnavailable, []error{
		ErrGatewayClosed, ErrDraining, ErrClosed, ErrPublishQueueFull,
		broker.ErrUnavailable, broker.ErrClosed, broker.ErrNotStarted,
		context.DeadlineExceeded, context.Canceled,
	}},
}

// ClassOf returns the class of err: ClassInternal for an error the table
// does not know (a bug), and the zero ErrorClass for nil.
func ClassOf(err error) ErrorClass {
	if err == nil {
		return ErrorClass{}
	}
	for _, row := range errorTable {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				return row.class
			}
		}
	}
	return ClassInternal
}

var classesByName = func() map[string]ErrorClass {
	m := make(map[string]ErrorClass)
	for _, c := range []ErrorClass{
		ClassBadRequest, ClassUnauthenticated, ClassForbidden, ClassNotFound, ClassMethodNotAllowed,
		ClassTooLarge, ClassUnsupportedMediaType, ClassInvalidTopic, ClassLimitExceeded,
		ClassInternal, ClassUnavailable, ClassUnknownOutcome,
	} {
		m[c.Name] = c
	}
	return m
}()

// ClassNamed returns the class called name, ClassInternal if none is.
func ClassNamed(name string) ErrorClass {
	if c, ok := classesByName[name]; ok {
		return c
	}
	return ClassInternal
}

// codeOf maps an error to a v2 error code.
func codeOf(err error) int { return ClassOf(err).V2 }
