package archive_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps archive free of the packages built on top of it.
func TestImports(t *testing.T) {
	forbidden := []string{"connector", "importer", "portal", "cmd"}
	for _, dir := range []string{".", "archivetest", "example/subscriber", "webhook"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", dir)
		}
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, p := range forbidden {
					if path == "github.com/mailgate/mailgate/"+p || strings.HasPrefix(path, "github.com/mailgate/mailgate/"+p+"/") {
						t.Errorf("%s imports %s", f, path)
					}
				}
			}
		}
	}
}
