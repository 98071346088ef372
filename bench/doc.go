// Package bench is the load generator behind "firetower bench". It drives
// a server speaking firetower v1 with cheap client connections (a minimal
// RFC 6455 client, wsclient.go, one reading goroutine per connection),
// spread over worker processes (worker.go) that a coordinator starts,
// publishes to and merges (run.go).
//
// Every published data value is
//
//	{"k":"<topic>","s":<seq>,"t":<unix nanos at send>,"p":"<padding>"}
//
// (payload.go), so each subscriber checks per topic that messages arrive in
// order with no gap (lost), no repeat (duplicate) and on a topic it holds
// (wrong) (verify.go), and records the publish-to-delivery latency into a
// log-linear histogram that merges across processes (histogram.go). The
// server's CPU time, RSS, threads and open files come from /proc (proc.go).
//
// Scenarios:
//
//   - idle: --conns connections, each on its own topic /b/c<i>; RSS per
//     connection once they are all subscribed and settled.
//   - fanout: --subs subscribers of one topic; the publisher keeps at most
//     --window messages beyond what the slowest subscriber has.
//   - rate: the same subscribers, published to at a fixed --rate.
//   - topics: --conns connections, each on /b/c<i> and one of --groups group
//     topics /b/g<i%groups>, published to round-robin at --rate.
//   - churn: --conns loops of connect, subscribe, publish to itself,
//     receive, disconnect.
//
// A run connects and subscribes every client, proves each subscription with
// a probe message (sequence 0, not counted), publishes for --warmup, then
// measures for --duration: only messages sent from the start of the
// measured interval count as deliveries and latency samples, and the
// server's CPU time is read at both ends of it. Publishing then stops and
// the workers wait up to --drain for the last message of every topic; what
// is still missing then is lost.
//
// One command reproduces a figure:
//
//	firetower bench --spawn serve --scenario fanout --duration 10s
//	firetower bench --spawn serve --scenario idle --conns 10000 --json idle.json
//	firetower bench --url ws://127.0.0.1:9999/ws --pid $(pidof firetower) --scenario topics
//
// With --protocol centrifugo the clients speak the Centrifuge JSON protocol
// instead (centrifugo.go), so a Centrifugo server in insecure client mode
// can be measured with the same scenarios (not churn, not --publish api):
//
//	firetower bench --protocol centrifugo --url ws://127.0.0.1:8000/connection/websocket --pid $(pidof centrifugo) --scenario fanout
//
// Workers run as "firetower bench --worker": the first line on their input
// is their configuration, later lines are commands (mark, drain), and the
// end of the input stops them; they answer with JSON lines on their output
// (connected, marked, complete, synced, a stat line a second, final).
package bench
