package portal

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	textlang "golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// viewNames are the pages; each is parsed with the layout at start so that a
// broken template fails New, not a request.
var viewNames = []string{
	"login", "forbidden", "error", "message", "connections", "connection",
	"connect", "code", "disconnect", "secret", "webhooks",
}

type views struct {
	byName map[string]*template.Template
}

func parseViews() (*views, error) {
	v := &views{byName: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"groupCode": groupCode,
		"deref":     func(b *bool) bool { return b != nil && *b },
		"field":     func(key string) string { return strings.TrimPrefix(key, "form.") },
		"percent": func(a, b int) int {
			if b <= 0 {
				return 0
			}
			return min(100, a*100/b)
		},
	}
	for _, name := range viewNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse view %s: %w", name, err)
		}
		v.byName[name] = t
	}
	return v, nil
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// page is what every template sees.
type page struct {
	Lang       string
	OtherLang  string
	Path       string
	TitleKey   string
	User       *sessionUser
	Member     bool // the user is in the connect group
	CSRF       string
	Group      string
	Refresh    int // seconds; 0 = no meta refresh
	DemoRedeem bool
	SSO        bool
	Webhooks   bool // the webhook pages exist
	Data       any
	cat        map[string]string
	loc        *time.Location // the viewers' time zone (German pages)
}

// T translates a catalogue key; with args the entry is a fmt format. An
// unknown key is shown as it is.
func (p page) T(key string, args ...any) string {
	s, ok := p.cat[key]
	if !ok {
		s = catalogue["en"][key]
		if s == "" {
			s = key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// N writes a count (any integer type) with the page language's
// thousands separator.
func (p page) N(n any) string {
	tag := textlang.English
	if p.Lang == "de" {
		tag = textlang.German
	}
	return message.NewPrinter(tag).Sprintf("%d", n)
}

// Left words an estimated time left: minutes, hours above two hours,
// "less than a minute" below one.
func (p page) Left(d time.Duration) string {
	switch {
	case d < time.Minute:
		return p.T("detail.left_seconds")
	case d < 2*time.Hour:
		return p.T("detail.left_minutes", int((d+30*time.Second)/time.Minute))
	default:
		return p.T("detail.left_hours", int((d+30*time.Minute)/time.Hour))
	}
}

// Has reports whether the catalogue knows key.
func (p page) Has(key string) bool { _, ok := catalogue["en"][key]; return ok }

// render executes a view into a buffer first, so a failing template never
// sends half a page. Only browser routes (with a session) render.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, view, titleKey string, data any) {
	lang := language(r)
	other := "de"
	if lang == "de" {
		other = "en"
	}
	p := page{
		Lang: lang, OtherLang: other, Path: r.URL.Path, TitleKey: titleKey,
		User: s.currentUser(r.Context()), Group: s.cfg.ConnectGroup, DemoRedeem: s.cfg.DemoRedeem,
		SSO: s.sso != nil, Webhooks: s.deps.Webhooks != nil, Data: data, cat: catalogue[lang], loc: s.cfg.TimeZone,
	}
	p.CSRF = s.csrfToken(r.Context())
	if p.User != nil {
		p.Member = slices.Contains(p.User.Groups, s.cfg.ConnectGroup)
	}
	if rp, ok := data.(interface{ refresh() int }); ok {
		p.Refresh = rp.refresh()
	}
	var buf bytes.Buffer
	if err := s.views.byName[view].Execute(&buf, p); err != nil {
		s.log.ErrorContext(r.Context(), "render", "view", view, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", lang)
	w.Header().Set("Cache-Control", "no-store") // pages carry the form token
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// groupCode splits a code into groups of four for reading aloud and typing.
func groupCode(code string) string {
	if strings.ContainsAny(code, "- ") {
		return code
	}
	var b strings.Builder
	for i, r := range code {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
