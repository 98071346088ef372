package broker_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The core never imports a Redis, NATS or gRPC client: only the broker
// packages of those systems (and the application that picks one) do.
func TestCoreImportsNoClients(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	core := []string{".", "../gateway", "../protocol", "../internal/hub"}
	out, err := exec.Command(goBin, append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, core...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, client := range []string{"github.com/redis/", "github.com/nats-io/", "google.golang.org/grpc"} {
			if strings.HasPrefix(dep, client) {
				t.Errorf("the core (broker, gateway, protocol, internal/hub) depends on %s", dep)
			}
		}
	}
}
