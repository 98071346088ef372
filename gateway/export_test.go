package gateway

import "context"

// SetDefaultTransport sets the Transport of configs that name none, for
// running the whole test suite on one transport (FIRETOWER_TEST_TRANSPORT).
func SetDefaultTransport(tr Transport) { defaultTransport = tr }

// CheckClaim runs one background check of the gateway's node number claim
// (claim.go) now, as if its interval had passed.
func (g *Gateway) CheckClaim() {
	g.checkClaim(context.Background(), &claimState{confirmed: true})
}
