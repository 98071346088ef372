package pushapi_test

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/pushapi"
)

// docs/openapi.yaml describes every route of the HTTP API and nothing else.
// The file is read line by line: under "paths:", a path is a key indented
// by two spaces and its methods keys indented by four.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f, err := os.Open("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var documented []string
	inPaths, path := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && len(line) > 4 && line[:4] == "    " && line[4] != ' ' && strings.HasSuffix(line, ":"):
			method := strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(line), ":"))
			documented = append(documented, method+" "+path)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, r := range pushapi.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if len(served) == 0 || !slices.Equal(documented, served) {
		t.Errorf("docs/openapi.yaml documents\n  %s\nthe API serves\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
}
