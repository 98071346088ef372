package server_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/server"
)

// --broker-settle becomes the settle=D parameter of the --broker URL,
// which every external broker reads (0: off); without it the URL is left
// alone (each broker's default window). It is refused with the embedded
// broker and when negative.
func TestParseBrokerSettle(t *testing.T) {
	emptyDir(t)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--broker", "redis://h:6379"}, nil, "redis://h:6379"},
		{[]string{"--broker", "redis://h:6379", "--broker-settle", "5s"}, nil, "redis://h:6379?settle=5s"},
		{[]string{"--broker", "nats://a:4222,b:4222?prefix=p", "--broker-settle", "0"}, nil, "nats://a:4222,b:4222?prefix=p&settle=0s"},
		{[]string{"--broker", "tm://h:6666"}, map[string]string{"FIRETOWER_BROKER_SETTLE": "1500ms"}, "tm://h:6666?settle=1.5s"},
	} {
		o, err := server.ParseGateway(c.args, fakeEnv(c.env), &bytes.Buffer{})
		if err != nil || o.Server.Broker != c.want {
			t.Errorf("%v %v: %v, Broker %q, want %q", c.args, c.env, err, o.Server.Broker, c.want)
		}
	}
	for _, args := range [][]string{{"--broker-settle", "3s"}, {"--broker", "tm://h:6666", "--broker-settle", "-1s"}} {
		if _, err := server.ParseGateway(args, fakeEnv(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--broker-settle") {
			t.Errorf("%v: %v, want a --broker-settle error", args, err)
		}
	}
}
