package redis

// names are the channels and keys of one cluster (one prefix P):
//
//	P:t:<topic>          Pub/Sub channel of a topic (the topic's bytes, unescaped)
//	P:cmd                Pub/Sub channel of the commands, subscribed by every node
//	P:{counts}:nodes     sorted set: node id -> end of its lease (Unix ms, Redis clock)
//	P:{counts}:n:<node>  hash: topic -> the node's local subscriber count; expires with the lease
//
// Channel names are binary-safe and SUBSCRIBE matches them literally (only
// PSUBSCRIBE has glob patterns), so a topic needs no escaping: "*", "?",
// "[ab]" or a space are their own channel. The count keys share the hash
// tag {counts}, so that on a Redis Cluster they live on one shard and the
// count scripts, which reach every node's hash, stay on it.
type names struct {
	topicPrefix string
	commands    string
	nodes       string
	nodePrefix  string
}

func newNames(prefix string) names {
	return names{
		topicPrefix: prefix + ":t:",
		commands:    prefix + ":cmd",
		nodes:       prefix + ":{counts}:nodes",
		nodePrefix:  prefix + ":{counts}:n:",
	}
}

func (n names) topic(topic string) string { return n.topicPrefix + topic }

func (n names) node(id string) string { return n.nodePrefix + id }
