package engine_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// All answer parsing happens in-process: no outside NLP service sees a
// patient's words. This holds the engine to it: neither the engine's and
// the flow loader's packages nor anything they use can make an HTTP or TLS
// connection, send mail or start a program, and none of those packages
// imports the net package itself (net/mail, for e-mail address syntax, brings it
// in without dialling).
func TestEngineReachesNoNetwork(t *testing.T) {
	deps, err := exec.Command("go", "list", "-deps", "./...", "../flows/...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	all := strings.Fields(string(deps))
	if !slices.Contains(all, "github.com/expr-lang/expr/vm") {
		t.Fatalf("go list gave no dependencies the engine is known to have: %v", all)
	}
	for _, forbidden := range []string{"net/http", "crypto/tls", "net/smtp", "net/rpc", "os/exec", "plugin"} {
		if slices.Contains(all, forbidden) {
			t.Errorf("the engine depends on %s", forbidden)
		}
	}
	own, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}", "./...", "../flows/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if imp == "net" || strings.HasPrefix(imp, "net/http") {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
