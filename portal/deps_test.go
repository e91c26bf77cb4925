package portal

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the portal away from the Graph SDK and the importer:
// they are reached through the interfaces in deps.go.
func TestImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/microsoftgraph/", "github.com/microsoft/kiota",
			"github.com/mailgate/mailgate/importer", "github.com/mailgate/mailgate/connector/graph",
		} {
			if strings.HasPrefix(dep, banned) && dep != "github.com/mailgate/mailgate/connector/graphtest" {
				t.Errorf("portal depends on %s", dep)
			}
		}
	}
}
