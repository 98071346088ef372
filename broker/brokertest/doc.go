// Package brokertest is the conformance suite that every broker.Broker
// implementation runs: the in-process bus, the topic manager client, Redis and
// NATS. It checks the guarantees written on the broker.Broker interface
// (interest routing, commands to every node, no echo to the origin,
// per-publisher order, at-most-once, cluster-wide counts, Close, what
// Publish's result says of the message) the same way for all of them.
//
// An implementation's test hands Run a Factory that builds one new, isolated
// cluster per subtest and returns a constructor for unstarted nodes of it:
//
//	func TestRedis(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) func(*testing.T) broker.Broker {
//			prefix := uniquePrefix(t) // isolates this cluster on a shared server
//			return func(t *testing.T) broker.Broker { return redis.New(redis.Config{Prefix: prefix}) }
//		}, brokertest.Options{InterestDelay: 2 * time.Second})
//	}
//
// The suite starts every node itself, with a node id unique to the cluster,
// and closes it in t.Cleanup (after which the factory's own cleanups run).
//
// # Timing
//
// Remote brokers deliver asynchronously and propagate interest in the
// background, so the suite never sleeps to wait for something to happen. It
// polls with a deadline (CheckFor) and uses three bounds from Options:
//
//   - Interest propagation is awaited with probes: the publisher sends probe
//     messages (ids with the top bit set) on the topic, one per poll, until
//     each expected receiver has got one, for at most InterestDelay. Only then
//     does the real measurement start, and probes are left out of it. Since
//     order per publisher and topic is guaranteed, everything published after
//     the first probe arrived is routed by the new interest.
//   - Withdrawn interest is awaited the other way round: a probe is published
//     and watched for Quiet; once one is not delivered, the withdrawal has
//     propagated (again bounded by InterestDelay).
//   - Something that must not happen (a message to a node without interest,
//     an echo to the origin, a duplicate) is checked by watching for Quiet
//     after everything that must arrive has arrived. These watches are the
//     suite's only sleeps; Quiet must exceed the broker's normal delivery
//     latency.
//
// # Implementation-specific behaviour
//
// Starting a second node with the id of a live node is refused by the
// in-process bus, while a remote broker may prefer to let a restarted
// gateway take its session over. Options.RefusesDuplicateNodeID declares the
// former; without it the DuplicateNodeID subtest is skipped. Reusing the id
// of a node that has closed must work everywhere (NodeIDReuse).
package brokertest
