package gateway

import (
	"slices"
	"time"
)

// ConnInfo describes one open connection of this node.
type ConnInfo struct {
	ClientID    string    `json:"clientId"`
	UserID      string    `json:"userId"`
	RemoteAddr  string    `json:"remoteAddr"`
	Protocol    int       `json:"protocol"` // 1 or 2
	ConnectedAt time.Time `json:"connectedAt"`
	// Topics are the connection's subscriptions, sorted.
	Topics []string `json:"topics"`
	// Queued is the number of frames waiting for the connection's writer.
	Queued int `json:"queued"`
}

// FindConnections returns this node's open connections whose client id is
// clientID or whose UserId is userID (an empty argument matches nothing),
// oldest first, at most limit of them, and how many matched in all. The ids
// are those of the last callback each connection's Run goroutine finished.
// It looks them up in the user and client indexes (index.go).
func (g *Gateway) FindConnections(clientID, userID string, limit int) (found []ConnInfo, matched int) {
	type match struct {
		t  *FireTower
		id identity
	}
	var ms []match
	seen := make(map[*FireTower]bool)
	for _, t := range append(g.towersOfClient(clientID), g.towersOfUser(userID)...) {
		if !seen[t] {
			seen[t] = true
			ms = append(ms, match{t, t.identity()})
		}
	}
	slices.SortFunc(ms, func(a, b match) int { return a.t.startTime.Compare(b.t.startTime) })
	matched = len(ms)
	if limit >= 0 && len(ms) > limit {
		ms = ms[:limit]
	}
	for _, m := range ms {
		found = append(found, m.t.info(m.id))
	}
	return found, matched
}

// info describes t; it takes t's subscription lock and queue lock in turn,
// never together.
func (t *FireTower) info(id identity) ConnInfo {
	t.subMu.Lock()
	topics := make([]string, 0, len(t.topics))
	for topic := range t.topics {
		topics = append(topics, topic)
	}
	t.subMu.Unlock()
	slices.Sort(topics)
	t.out.mu.Lock()
	queued := len(t.out.queue)
	t.out.mu.Unlock()
	return ConnInfo{
		ClientID:    id.client,
		UserID:      id.user,
		RemoteAddr:  t.remoteAddr,
		Protocol:    int(t.version),
		ConnectedAt: t.startTime,
		Topics:      topics,
		Queued:      queued,
	}
}
