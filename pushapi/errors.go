package pushapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// ErrNoKey is returned by NewAuth for an empty key.
var ErrNoKey = errors.New("pushapi: no API key: set one, or open the API explicitly with InsecureAuth (--api-insecure)")

// Code names the kind of an API error. The HTTP API sends it as
// {"error":{"code":CODE,"message":...}} with the status of Code.HTTPStatus;
// the gRPC API maps it to a status code.
type Code string

// Error codes.
const (
	// CodeBadRequest: malformed JSON, an unknown or missing field, data that
	// is not one JSON value in UTF-8, a bad cursor or limit.
	CodeBadRequest Code = "bad_request"
	// CodeUnauthenticated: no API key, or the wrong one.
	CodeUnauthenticated Code = "unauthenticated"
	// CodeNotFound: no such API path.
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed: the path exists for another HTTP method.
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeTooLarge: the request body or the data is over its limit.
	CodeTooLarge Code = "too_large"
	// CodeUnsupportedMediaType: a request body that is not
	// application/json.
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeInvalidTopic: empty, too long, a control character, a comma or
	// invalid UTF-8.
	CodeInvalidTopic Code = "invalid_topic"
	// CodeUnavailable: the node is shutting down, or the other nodes could
	// not be reached (this node's subscribers got the message).
	CodeUnavailable Code = "unavailable"
	// CodeUnknownOutcome: the broker was handed the message but did not
	// confirm it (broker.ErrUnknownOutcome): it may or may not have
	// reached the other nodes, and a retry may deliver it twice.
	CodeUnknownOutcome Code = "unknown_outcome"
	// CodeInternal: a bug.
	CodeInternal Code = "internal"
)

// HTTPStatus returns the HTTP status code of c.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case CodeInvalidTopic:
		return http.StatusUnprocessableEntity
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeUnknownOutcome:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Error is an API error: what the caller did wrong, or why the server could
// not do it. Every error the Service returns is an *Error; it wraps the
// cause, so errors.Is(err, gateway.ErrMessageTooLarge) works too.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	err     error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// errorf returns an *Error with a formatted message and no other cause.
func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorOf returns err as an *Error: itself if it is one, else the code its
// cause (a gateway, protocol or broker error) calls for.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	code := CodeInternal
	switch {
	case errors.Is(err, broker.ErrUnknownOutcome):
		code = CodeUnknownOutcome
	case errors.Is(err, protocol.ErrTopicEmpty), errors.Is(err, protocol.ErrTopicTooLong),
		errors.Is(err, protocol.ErrTopicInvalid), errors.Is(err, protocol.ErrNoTopics):
		code = CodeInvalidTopic
	case errors.Is(err, gateway.ErrMessageTooLarge), errors.Is(err, broker.ErrTooLarge):
		code = CodeTooLarge
	case errors.Is(err, gateway.ErrInvalidData), errors.Is(err, protocol.ErrTooManyTopics),
		errors.Is(err, broker.ErrBadCommand):
		code = CodeBadRequest
	case errors.Is(err, gateway.ErrGatewayClosed), errors.Is(err, gateway.ErrDraining),
		errors.Is(err, broker.ErrUnavailable), errors.Is(err, broker.ErrClosed),
		errors.Is(err, broker.ErrNotStarted), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, gateway.ErrClosed):
		code = CodeUnavailable
	}
	return &Error{Code: code, Message: err.Error(), err: err}
}
