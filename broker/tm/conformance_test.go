package tm_test

import (
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/brokertest"
	"github.com/firetower-go/firetower/topicmgr"
)

// managers returns a brokertest.Factory of clusters of n managers.
func managers(n int) brokertest.Factory {
	return func(t *testing.T) func(*testing.T) broker.Broker {
		var ms []*manager
		for range n {
			ms = append(ms, startManager(t, topicmgr.Config{}))
		}
		cfg := fastConfig(ms...)
		return func(t *testing.T) broker.Broker { return newBroker(t, cfg) }
	}
}

// A node id in use is not refused: a new session of the same id replaces
// the old one at the manager (a restarted gateway whose old connection is
// not yet seen dead), so the DuplicateNodeID subtest is skipped;
// topicmgr's TestReplacedSession covers the replacement.
//
// conformanceOptions leave room for a loaded CI machine (the whole suite
// runs packages in parallel under the race detector): a Close may take up to
// its two-second goodbye grace, and interest one reconnect. Under such load
// the goodbye of a node closed in the middle of heavy traffic (Concurrency)
// can miss its grace and the farewell connection its second; the manager
// then drops the node's counts when its lease (topicmgr.DefaultLease, 15 s)
// ends, the designed fallback, which InterestDelay therefore covers (seen
// once in a CI run: the closed node's count still there after 5 s). Passing
// runs do not wait longer: the checks poll.
var conformanceOptions = brokertest.Options{
	InterestDelay:   topicmgr.DefaultLease + 5*time.Second,
	DeliveryTimeout: 5 * time.Second,
	Quiet:           150 * time.Millisecond,
}

// The conformance suite against one topic manager.
func TestConformanceOneManager(t *testing.T) {
	brokertest.Run(t, managers(1), conformanceOptions)
}

// The conformance suite against three managers sharing the topics.
func TestConformanceThreeManagers(t *testing.T) {
	brokertest.Run(t, managers(3), conformanceOptions)
}
