package pushapi

import (
	"errors"
	"fmt"

	"github.com/firetower-go/firetower/gateway"
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
	// CodeLimitExceeded: a limit of the node (subscriptions) was reached.
	CodeLimitExceeded Code = "limit_exceeded"
	// CodeUnknownOutcome (504): the request ended while the broker had the
	// message: the other nodes may or may not get it. A retry may deliver
	// it twice.
	CodeUnknownOutcome Code = "unknown_outcome"
	// CodeInternal: a bug.
	CodeInternal Code = "internal"
)

// HTTPStatus returns the HTTP status code of c (the gateway's error
// table, gateway.ClassNamed).
func (c Code) HTTPStatus() int { return gateway.ClassNamed(string(c)).HTTP }

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
	code := Code(gateway.ClassOf(err).Name) // the one error table
	return &Error{Code: code, Message: err.Error(), err: err}
}
