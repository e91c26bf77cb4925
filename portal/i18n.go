package portal

import (
	"net/http"
	"strings"
	"time"
)

// language picks the page language: the "lang" cookie, then the
// Accept-Language header, then English.
func language(r *http.Request) string {
	if c, err := r.Cookie("lang"); err == nil {
		if _, ok := catalogue[c.Value]; ok {
			return c.Value
		}
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if _, ok := catalogue[base]; ok {
			return base
		}
	}
	return "en"
}

// setLang switches the language by a cookie and goes back.
func (s *Server) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.URL.Query().Get("to")
	if _, ok := catalogue[lang]; !ok {
		lang = "en"
	}
	http.SetCookie(w, &http.Cookie{
		Name: "lang", Value: lang, Path: "/", MaxAge: int((365 * 24 * time.Hour).Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}
