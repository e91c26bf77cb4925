package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte("storage: connection refused\n"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().(*net.TCPAddr)

	check := func(env map[string]string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"healthcheck"}, args...), func(k string) string { return env[k] }, nil, &out, &errb)
		return code, out.String() + errb.String()
	}
	// As the compose file runs it: no argument, the service's own
	// MAILGATE_HTTP_ADDR on all interfaces.
	env := map[string]string{"MAILGATE_HTTP_ADDR": "0.0.0.0:" + strconv.Itoa(addr.Port)}
	if code, out := check(env); code != 0 {
		t.Fatalf("ready process: exit %d: %s", code, out)
	}
	if code, out := check(nil, srv.URL+"/readyz"); code != 0 {
		t.Fatalf("ready process by URL: exit %d: %s", code, out)
	}
	status = http.StatusServiceUnavailable
	code, out := check(env)
	if code != 1 || !strings.Contains(out, "503") {
		t.Errorf("unready process: exit %d, output %q; want 1 and the status", code, out)
	}
	srv.Close()
	if code, out := check(env); code != 1 {
		t.Errorf("no process: exit %d: %s", code, out)
	}
	if code, _ := check(nil, "a", "b"); code != 2 {
		t.Errorf("two URLs: exit %d, want 2", code)
	}
}

func TestReadyzURL(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:8080":   "http://127.0.0.1:8080/readyz",
		":8080":          "http://127.0.0.1:8080/readyz",
		"127.0.0.1:9000": "http://127.0.0.1:9000/readyz",
		"[::]:8080":      "http://[::1]:8080/readyz",
		"portal:8080":    "http://portal:8080/readyz",
	} {
		if got, err := readyzURL(addr); err != nil || got != want {
			t.Errorf("readyzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	for _, addr := range []string{"8080", "127.0.0.1:0"} {
		if _, err := readyzURL(addr); err == nil {
			t.Errorf("readyzURL(%q): no error", addr)
		}
	}
}
