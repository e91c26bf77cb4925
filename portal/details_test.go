package portal

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEverySkipDetailInGerman reads the detail lines the importer writes
// (importer/policy, importer's document and parked-mail code) from their
// source and requires a German wording for each, so a new or reworded
// line cannot stay English on German pages unnoticed.
func TestEverySkipDetailInGerman(t *testing.T) {
	forms := regexp.MustCompile(`(?:Detail:|Detail =|skip\(archive\.\w+,)\s*(?:fmt\.Sprintf\()?"([^"]+)"`)
	failed := regexp.MustCompile(`fmt\.Sprintf\("(failed %d times[^"]*)"`)
	de := page{Lang: "de"}
	n := 0
	for _, f := range []string{"../importer/policy/policy.go", "../importer/document.go", "../importer/parked.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, m := range forms.FindAllStringSubmatch(string(src), -1) {
			lines = append(lines, m[1])
		}
		for _, m := range failed.FindAllStringSubmatch(string(src), -1) {
			lines = append(lines, m[1], m[1]+"the mail could not be imported: x")
		}
		for _, l := range lines {
			n++
			example := strings.NewReplacer("%s", "application/x-test", "%d", "12").Replace(l)
			if strings.HasSuffix(example, " as ") {
				example += "doc_1" // "… archived before as " + owner
			}
			got := de.Detail(example)
			if got == example {
				t.Errorf("%s: detail %q has no German wording", f, example)
			}
		}
	}
	t.Logf("%d detail lines checked", n)
	if n < 15 {
		t.Fatalf("found only %d detail lines in the importer's source; the pattern no longer matches it", n)
	}
	if got := de.Detail("something new"); got != "something new" {
		t.Errorf("an unknown line is changed: %q", got)
	}
	if got := (page{Lang: "en"}).Detail("the attachment has no content"); got != "the attachment has no content" {
		t.Errorf("English page: %q", got)
	}
}
