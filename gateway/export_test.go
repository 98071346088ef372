package gateway

// SetDefaultTransport sets the Transport of configs that name none, for
// running the whole test suite on one transport (FIRETOWER_TEST_TRANSPORT).
func SetDefaultTransport(tr Transport) { defaultTransport = tr }
