// Package chaos holds the fault and soak tests of a running cluster: real
// gateways (the all-in-one server of package server) with real websocket
// clients on 127.0.0.1, whose broker (a topic manager, a private
// redis-server or a private nats-server) is killed and restarted under a
// steady stream of publishes (TestChaos), and one gateway under connection
// churn and steady publishing whose heap, goroutines and descriptors must
// stay flat (TestSoakShort, and the opt-in TestSoak with FIRETOWER_SOAK set
// to a duration). The package has no code of its own outside its tests;
// docs/reliability.md quotes their figures.
package chaos
