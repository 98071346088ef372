package protocol

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them.
var (
	ErrTopicEmpty    = errors.New("protocol: topic is empty")
	ErrTopicTooLong  = errors.New("protocol: topic is too long")
	ErrTopicInvalid  = errors.New("protocol: topic contains a control character, a comma or invalid UTF-8")
	ErrNoTopics      = errors.New("protocol: no topic given")
	ErrMalformed     = errors.New("protocol: malformed frame")
	ErrMissingType   = errors.New("protocol: frame has no type")
	ErrInvalidData   = errors.New("protocol: data is not a JSON value")
	ErrTooManyTopics = errors.New("protocol: too many topics in one frame")
	// ErrTopicReserved: the topic starts with ReservedTopicPrefix. It is
	// also an ErrTopicInvalid (errors.Is), so that callers refusing
	// invalid names (v2 error 4xx "invalid topic") refuse it the same way.
	ErrTopicReserved error = reservedError{}
)

type reservedError struct{}

func (reservedError) Error() string {
	return "protocol: topics starting with " + ReservedTopicPrefix + " are reserved for the gateways"
}

func (reservedError) Is(target error) bool { return target == ErrTopicInvalid }
