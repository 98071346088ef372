package auth

import "errors"

// Sentinel errors; Authenticate wraps them with the detail.
var (
	ErrNoToken    = errors.New("auth: no token (send the \"token\" query parameter or an Authorization: Bearer header)")
	ErrInvalid    = errors.New("auth: invalid token")
	ErrNoKey      = errors.New("auth: neither a secret nor a key is configured")
	ErrBothKeys   = errors.New("auth: configure a secret or a key, not both")
	ErrKeyFile    = errors.New("auth: unusable key file")
	ErrUnknownKey = errors.New("auth: no key matches the token")
)
