package importer

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the importer off the portal and off the Graph SDK
// (its build is huge; the importer sees Graph only through Mailbox).
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/mailgate/mailgate/importer/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/mailgate/mailgate/portal",
		"github.com/mailgate/mailgate/connector/graph",
		"github.com/microsoftgraph/",
		"github.com/microsoft/kiota",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("importer depends on %s", dep)
			}
		}
	}
}
