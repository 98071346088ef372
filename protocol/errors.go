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
)
