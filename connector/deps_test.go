package connector

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the SDK out of package connector: its build is huge and
// belongs to connector/graph only. Nor may connector know the portal or the
// importer.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/microsoftgraph/", "github.com/microsoft/kiota", "github.com/mailgate/mailgate/portal", "github.com/mailgate/mailgate/importer"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("connector depends on %s", dep)
			}
		}
	}
}
