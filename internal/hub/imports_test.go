package hub_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The hub delivers its own Message: it depends on package protocol for the
// frames and on nothing of the gateway's or the brokers'.
func TestImportsNoBroker(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/firetower-go/firetower/"
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, module); ok && rest != "internal/hub" && rest != "protocol" {
			t.Errorf("internal/hub depends on %s", dep)
		}
	}
}
