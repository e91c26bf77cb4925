package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/mailgate/mailgate/importer/rules/xpath"
)

// Namespaces of the rule files.
const (
	nsSchematron = "http://purl.oclc.org/dsdl/schematron"
	nsXSL        = "http://www.w3.org/1999/XSL/Transform"
)

// schema is one Schematron rule set, compiled.
type schema struct {
	name     string // e.g. "EN16931-CEN 1.3.16 (commit b6c9e06)"
	globals  []let  // the schema's and its patterns' variables, in order
	patterns []pattern
}

type pattern struct {
	id    string
	rules []rule
}

// rule is a Schematron rule: its asserts run on every node its context
// matches, unless an earlier rule of the same pattern took the node.
type rule struct {
	context *xpath.Expr
	lets    []let
	asserts []assertion
}

type let struct {
	name  string
	value *xpath.Expr
}

type assertion struct {
	id, flag string
	report   bool // <report>: fails when the test holds
	test     *xpath.Expr
	message  []messagePart
}

// messagePart is text, or an expression (<value-of>, <name>) whose value
// is written in its place.
type messagePart struct {
	text  string
	value *xpath.Expr
}

// loadSchema reads and compiles a Schematron file from fsys, with its
// includes.
func loadSchema(fsys fs.FS, file, name string) (*schema, error) {
	root, err := readXML(fsys, file)
	if err != nil {
		return nil, err
	}
	// xs is declared in the compiled XSLT the rule sets ship, whether or
	// not the Schematron declares it.
	env := &xpath.Env{Namespaces: map[string]string{"xs": "http://www.w3.org/2001/XMLSchema"}, Functions: map[string]*xpath.Function{}}
	for _, d := range root.Declared() {
		if d[0] != "" {
			env.Namespaces[d[0]] = d[1]
		}
	}
	s := &schema{name: name}
	var elems []*xpath.Node
	// Includes are replaced by the element they point at.
	for _, c := range elements(root) {
		if c.Space == nsSchematron && c.Local == "include" {
			inc, err := readXML(fsys, path.Join(path.Dir(file), attr(c, "href")))
			if err != nil {
				return nil, err
			}
			c = inc
		}
		elems = append(elems, c)
	}
	// Namespaces and functions first: expressions anywhere may use them.
	for _, c := range elems {
		if c.Space == nsSchematron && c.Local == "ns" {
			env.Namespaces[attr(c, "prefix")] = attr(c, "uri")
		}
	}
	for _, c := range elems {
		if c.Space == nsXSL && c.Local == "function" {
			if err := addFunction(env, c); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	for _, c := range elems {
		if c.Space != nsSchematron {
			continue
		}
		switch c.Local {
		case "let":
			l, err := compileLet(c, env)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			s.globals = append(s.globals, l)
		case "pattern":
			p, lets, err := compilePattern(c, env)
			if err != nil {
				return nil, fmt.Errorf("%s: pattern %s: %w", file, attr(c, "id"), err)
			}
			s.globals = append(s.globals, lets...)
			if len(p.rules) > 0 {
				s.patterns = append(s.patterns, p)
			}
		}
	}
	return s, nil
}

func readXML(fsys fs.FS, file string) (*xpath.Node, error) {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err
	}
	doc, err := xpath.Parse(context.Background(), bytes.NewReader(b), xpath.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return doc.Element(), nil
}

func elements(n *xpath.Node) []*xpath.Node {
	var out []*xpath.Node
	for _, c := range n.Children {
		if c.Kind == xpath.ElementNode {
			out = append(out, c)
		}
	}
	return out
}

func attr(n *xpath.Node, name string) string {
	for _, a := range n.Attrs {
		if a.Local == name && a.Space == "" {
			return a.Data
		}
	}
	return ""
}

// addFunction compiles an xsl:function whose body is one xsl:sequence,
// as the XRechnung rules declare theirs.
func addFunction(env *xpath.Env, n *xpath.Node) error {
	name := attr(n, "name")
	prefix, local, ok := strings.Cut(name, ":")
	uri := env.Namespaces[prefix]
	if !ok || uri == "" {
		return fmt.Errorf("function %s: no namespace", name)
	}
	f := &xpath.Function{}
	var body string
	for _, c := range elements(n) {
		switch {
		case c.Space == nsXSL && c.Local == "param":
			f.Params = append(f.Params, attr(c, "name"))
		case c.Space == nsXSL && c.Local == "sequence":
			body = attr(c, "select")
		default:
			return fmt.Errorf("function %s: %s not supported", name, c.Local)
		}
	}
	// Declare before compiling the body: it may call itself.
	env.Functions["{"+uri+"}"+local] = f
	e, err := xpath.Compile(body, env)
	if err != nil {
		return fmt.Errorf("function %s: %w", name, err)
	}
	f.Body = e
	return nil
}

func compileLet(n *xpath.Node, env *xpath.Env) (let, error) {
	e, err := xpath.Compile(attr(n, "value"), env)
	if err != nil {
		return let{}, fmt.Errorf("let %s: %w", attr(n, "name"), err)
	}
	return let{name: attr(n, "name"), value: e}, nil
}

func compilePattern(n *xpath.Node, env *xpath.Env) (pattern, []let, error) {
	p := pattern{id: attr(n, "id")}
	var lets []let
	for _, c := range elements(n) {
		if c.Space != nsSchematron {
			continue
		}
		switch c.Local {
		case "let":
			l, err := compileLet(c, env)
			if err != nil {
				return p, nil, err
			}
			lets = append(lets, l)
		case "rule":
			if attr(c, "abstract") == "true" {
				return p, nil, errors.New("abstract rules are not supported (use the preprocessed Schematron)")
			}
			r, err := compileRule(c, env)
			if err != nil {
				return p, nil, err
			}
			p.rules = append(p.rules, r)
		}
	}
	return p, lets, nil
}

func compileRule(n *xpath.Node, env *xpath.Env) (rule, error) {
	ctx, err := xpath.CompilePattern(attr(n, "context"), env)
	if err != nil {
		return rule{}, fmt.Errorf("rule context: %w", err)
	}
	r := rule{context: ctx}
	for _, c := range elements(n) {
		if c.Space != nsSchematron {
			continue
		}
		switch c.Local {
		case "let":
			l, err := compileLet(c, env)
			if err != nil {
				return r, err
			}
			r.lets = append(r.lets, l)
		case "assert", "report":
			a, err := compileAssertion(c, env)
			if err != nil {
				return r, err
			}
			r.asserts = append(r.asserts, a)
		case "extends":
			return r, errors.New("extends is not supported (use the preprocessed Schematron)")
		}
	}
	return r, nil
}

func compileAssertion(n *xpath.Node, env *xpath.Env) (assertion, error) {
	a := assertion{id: attr(n, "id"), flag: attr(n, "flag"), report: n.Local == "report"}
	if a.flag == "" {
		a.flag = "fatal"
	}
	test, err := xpath.Compile(attr(n, "test"), env)
	if err != nil {
		return a, fmt.Errorf("%s %s: %w", n.Local, a.id, err)
	}
	a.test = test
	for _, c := range n.Children {
		switch {
		case c.Kind == xpath.TextNode:
			a.message = append(a.message, messagePart{text: c.Data})
		case c.Kind == xpath.ElementNode && c.Space == nsSchematron && (c.Local == "value-of" || c.Local == "name"):
			sel := attr(c, "select")
			if c.Local == "name" {
				if sel == "" {
					sel = "."
				}
				sel = "name(" + sel + ")"
			}
			e, err := xpath.Compile(sel, env)
			if err != nil {
				return a, fmt.Errorf("%s %s: message: %w", n.Local, a.id, err)
			}
			a.message = append(a.message, messagePart{value: e})
		case c.Kind == xpath.ElementNode:
			a.message = append(a.message, messagePart{text: c.StringValue()})
		}
	}
	return a, nil
}

// run evaluates the rule set on doc and returns its failed assertions.
// A dynamic error ends the run, as it ends Saxon's transformation.
func (s *schema) run(c *xpath.Context, doc *xpath.Document) ([]Finding, error) {
	var globals *xpath.Vars
	for _, l := range s.globals {
		v, err := c.Eval(l.value, doc.Root, globals)
		globals = xpath.Bind(globals, l.name, v, err)
	}
	c.SetGlobals(globals)
	var out []Finding
	for _, p := range s.patterns {
		fired := map[*xpath.Node]bool{}
		for _, r := range p.rules {
			nodes, err := c.Match(r.context, nil)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", r.context, err)
			}
			for _, n := range nodes {
				if fired[n] {
					continue
				}
				fired[n] = true
				f, err := r.check(c, n)
				if err != nil {
					return nil, err
				}
				out = append(out, f...)
			}
		}
	}
	return out, nil
}

func (r *rule) check(c *xpath.Context, n *xpath.Node) ([]Finding, error) {
	var vars *xpath.Vars
	for _, l := range r.lets {
		v, err := c.Eval(l.value, n, vars)
		vars = xpath.Bind(vars, l.name, v, err)
	}
	var out []Finding
	for _, a := range r.asserts {
		ok, err := c.Bool(a.test, n, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.id, err)
		}
		if ok == a.report {
			out = append(out, Finding{Rule: a.id, Flag: a.flag, Message: a.text(c, n, vars), Location: n.Path()})
		}
	}
	return out, nil
}

// text is the assertion's message as SVRL writes it: its text with the
// values filled in, white space collapsed.
func (a *assertion) text(c *xpath.Context, n *xpath.Node, vars *xpath.Vars) string {
	var b strings.Builder
	for _, m := range a.message {
		if m.value == nil {
			b.WriteString(m.text)
			continue
		}
		if v, err := c.Eval(m.value, n, vars); err == nil {
			b.WriteString(v.String())
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
