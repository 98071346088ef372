package gateway

import (
	"errors"

	"github.com/firetower-go/firetower/broker"
)

// Sentinel errors returned by the gateway. Errors from lower layers are
// wrapped with %w.
var (
	ErrClosed           = errors.New("gateway: connection is closed")
	ErrGatewayClosed    = errors.New("gateway: gateway is closed")
	ErrDraining         = errors.New("gateway: gateway is draining")
	ErrInvalidData      = errors.New("gateway: data is not a single JSON value")
	ErrMessageTooLarge  = errors.New("gateway: message is larger than the limit")
	ErrTooManyTopics    = errors.New("gateway: subscription limit reached")
	ErrQueueFull        = errors.New("gateway: outbound queue is full")
	ErrNilConn          = errors.New("gateway: websocket connection is nil")
	ErrOriginNotAllowed = errors.New("gateway: origin not allowed")
	ErrUnauthorized     = errors.New("gateway: unauthorized")
	ErrTooManyConns     = errors.New("gateway: connection limit reached")
	ErrTooManyConnsIP   = errors.New("gateway: connection limit per IP address reached")
	ErrConnectRate      = errors.New("gateway: connection rate per IP address exceeded")
	// ErrClusterIDTaken: New was given a Config.ClusterID that another node
	// of the cluster holds.
	ErrClusterIDTaken = errors.New("gateway: message-id node number taken")
	// ErrNoClusterID: New found no free node number to claim.
	ErrNoClusterID = errors.New("gateway: no free message-id node number")
)

// Errors of the publish path (publish.go, sender.go).
var (
	// ErrPublishQueueFull refuses a publish, before any delivery, when too
	// many messages wait for the broker (Config.PublishQueue).
	ErrPublishQueueFull = errors.New("gateway: too many messages wait for the broker")
	// ErrUnknownOutcome (the broker's sentinel) says that a publish was in
	// the broker's hands without a confirmation when its wait ended: the
	// other nodes may or may not get it.
	ErrUnknownOutcome = broker.ErrUnknownOutcome
)
