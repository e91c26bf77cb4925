package graphtest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Authorize drives the sign-in and consent page like a user would: it
// GETs authorizeURL (an authorize or admin consent URL), fills in user
// and password, presses Accept or Cancel, and returns the redirect URL the
// identity platform sends the browser to (with code and state, or error and
// error_description). A sign-in error shown on the page is returned as an
// error.
func Authorize(ctx context.Context, client *http.Client, authorizeURL, user, password string, accept bool) (*url.URL, error) {
	var (
		formRe   = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
		hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
		alertRe  = regexp.MustCompile(`<p class="error" role="alert">([^<]*)</p>`)
	)
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, fmt.Errorf("graphtest: authorize: %w", err)
	}
	page, loc, err := fetch(&c, req)
	if err != nil || loc != nil {
		return loc, err
	}
	m := formRe.FindStringSubmatch(page)
	if m == nil {
		return nil, errors.New("graphtest: authorize: no sign-in form on the page")
	}
	base, _ := url.Parse(authorizeURL)
	action, err := base.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return nil, fmt.Errorf("graphtest: authorize: form action: %w", err)
	}
	form := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(page, -1) {
		form.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	form.Set("login", user)
	form.Set("passwd", password)
	form.Set("action", "cancel")
	if accept {
		form.Set("action", "accept")
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("graphtest: authorize: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	page, loc, err = fetch(&c, req)
	if err != nil || loc != nil {
		return loc, err
	}
	if a := alertRe.FindStringSubmatch(page); a != nil {
		return nil, fmt.Errorf("graphtest: authorize: %s", html.UnescapeString(a[1]))
	}
	return nil, errors.New("graphtest: authorize: the form did not redirect")
}

// fetch returns the page, or the redirect location.
func fetch(c *http.Client, req *http.Request) (string, *url.URL, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("graphtest: authorize: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, fmt.Errorf("graphtest: authorize: read: %w", err)
	}
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
		loc, err := resp.Location()
		if err != nil {
			return "", nil, fmt.Errorf("graphtest: authorize: %w", err)
		}
		return "", loc, nil
	}
	if resp.StatusCode != http.StatusOK {
		if e := regexp.MustCompile(`<p id="error">([^<]*)</p>`).FindSubmatch(body); e != nil {
			return "", nil, fmt.Errorf("graphtest: authorize: %s", html.UnescapeString(string(e[1])))
		}
		return "", nil, fmt.Errorf("graphtest: authorize: status %d", resp.StatusCode)
	}
	return string(body), nil, nil
}
