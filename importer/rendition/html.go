package rendition

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"strings"
)

// HTMLContentType is the media type of HTML.
const HTMLContentType = "text/html; charset=utf-8"

// HTML renders the e-invoice XML as one self-contained HTML page (no
// script, no outside resource) with the same sections, values and bounds
// as PDF, for a browser to show inline. Every value is escaped.
func HTML(ctx context.Context, xml []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: %v", ErrRender, r)
		}
	}()
	if len(xml) > MaxInput {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(xml), MaxInput)
	}
	t, err := parse(ctx, xml, defaultLimits)
	if err != nil {
		return nil, err
	}
	d, err := build(ctx, t, defaultLimits)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := page.Execute(&b, view(d)); err != nil {
		return nil, fmt.Errorf("rendition: html: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// The template's view of a doc (templates read exported fields only).
type (
	hDoc struct {
		Title, Number, Syntax string
		Sections              []hSection
	}
	hSection struct {
		Title string
		Items []hItem
	}
	hItem struct {
		Kind         itemKind
		Label, Value string
		Table        *hTable
	}
	hTable struct {
		Head  []string
		right []bool
		Rows  []hRow
	}
	hRow struct{ Cells, Detail []string }
)

// Right says whether column i holds amounts.
func (t *hTable) Right(i int) bool { return i < len(t.right) && t.right[i] }

func view(d *doc) hDoc {
	v := hDoc{Title: d.title, Number: d.number, Syntax: d.syntax}
	for _, s := range d.sections {
		hs := hSection{Title: s.title}
		for _, it := range s.items {
			hi := hItem{Kind: it.kind, Label: it.label, Value: it.value}
			if it.table != nil {
				ht := &hTable{Head: it.table.head, right: it.table.right}
				for _, r := range it.table.rows {
					ht.Rows = append(ht.Rows, hRow{Cells: r.cells, Detail: r.detail})
				}
				hi.Table = ht
			}
			hs.Items = append(hs.Items, hi)
		}
		v.Sections = append(v.Sections, hs)
	}
	return v
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"lines": func(s string) []string { return strings.Split(s, "\n") },
	"kv":    func(k itemKind) bool { return k == kvItem },
	"sub":   func(k itemKind) bool { return k == subItem },
	"note":  func(k itemKind) bool { return k == noteItem },
	"table": func(k itemKind) bool { return k == tableItem },
}).Parse(`<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} {{.Number}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#111}
h1{color:#142850;font-size:1.4rem;margin-bottom:0}
.src{color:#555;font-size:.8rem;margin-top:.2rem}
h2{background:#dee6f2;color:#142850;font-size:1rem;padding:.3rem .5rem;margin:1.2rem 0 .3rem}
h3{font-size:.9rem;margin:.6rem 0 .2rem;border-bottom:1px solid #ccc;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}
td,th{vertical-align:top;padding:.15rem .3rem;border-bottom:1px solid #eee;overflow-wrap:anywhere}
th{background:#eef1f6;font-size:.75rem;text-align:left}
.k{color:#555;font-size:.8rem;width:40%}
.r{text-align:right}
.d{color:#444;font-size:.8rem;padding-left:1.5rem}
.n{color:#962020;font-weight:bold}
</style></head><body>
<h1>{{.Title}}{{if .Number}} Nr. {{.Number}}{{end}}</h1>
<p class="src">Lesbare Darstellung aus der elektronischen Rechnung ({{.Syntax}}); maßgeblich ist die XML-Datei / readable rendition, the XML is authoritative</p>
{{range .Sections}}<h2>{{.Title}}</h2>
{{range .Items}}{{if kv .Kind}}<table><tr><td class="k">{{.Label}}</td><td>{{range $i, $l := lines .Value}}{{if $i}}<br>{{end}}{{$l}}{{end}}</td></tr></table>
{{else if sub .Kind}}<h3>{{.Label}}</h3>
{{else if note .Kind}}<p class="n">{{.Value}}</p>
{{else if table .Kind}}{{$t := .Table}}<table><thead><tr>{{range $i, $h := $t.Head}}<th{{if $t.Right $i}} class="r"{{end}}>{{range $j, $l := lines $h}}{{if $j}}<br>{{end}}{{$l}}{{end}}</th>{{end}}</tr></thead><tbody>
{{range $t.Rows}}<tr>{{range $i, $c := .Cells}}<td{{if $t.Right $i}} class="r"{{end}}>{{range $j, $l := lines $c}}{{if $j}}<br>{{end}}{{$l}}{{end}}</td>{{end}}</tr>
{{if .Detail}}<tr><td class="d" colspan="{{len .Cells}}">{{range $j, $l := .Detail}}{{if $j}}<br>{{end}}{{$l}}{{end}}</td></tr>{{end}}
{{end}}</tbody></table>
{{end}}{{end}}{{end}}</body></html>
`))
