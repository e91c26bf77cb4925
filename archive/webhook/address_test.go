package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// deniedAddresses are addresses of the IANA special-purpose registries a
// webhook must never reach, each with the range it stands for. Several
// embed 169.254.169.254 (a9fe:a9fe) or 10.0.0.1, which a NAT64 or 6to4
// translator on the way would reach.
var deniedAddresses = []string{
	"0.0.0.0", "0.1.2.3", // this network
	"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", // private
	"100.64.0.1", "100.127.255.254", // CGNAT
	"127.0.0.1", "127.1.2.3", // loopback
	"169.254.169.254",          // link-local, cloud metadata
	"192.0.0.1", "192.0.0.170", // IETF protocol assignments, NAT64 discovery
	"192.0.2.1", "198.51.100.1", "203.0.113.1", // TEST-NETs
	"192.88.99.1",                  // 6to4 relay anycast
	"198.18.0.1", "198.19.255.255", // benchmarking
	"224.0.0.1", "239.255.255.250", // multicast
	"240.0.0.1", "255.255.255.255", // reserved, broadcast
	"::", "::1", // unspecified, loopback
	"::a9fe:a9fe", "::10.0.0.1", // IPv4-compatible
	"::ffff:169.254.169.254", "::ffff:10.0.0.1", // IPv4-mapped
	"::ffff:0:a9fe:a9fe", "::ffff:0:10.0.0.1", // SIIT
	"64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1", // NAT64 well-known
	"64:ff9b:1::a9fe:a9fe", "64:ff9b:1:ffff::a00:1", // NAT64 local-use
	"2002:a9fe:a9fe::1", "2002:a00:1::1", // 6to4
	"2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
	"2001:2::1", "2001:10::1",              // benchmarking, ORCHID
	"100::1",                 // discard-only
	"2001:db8::1", "3fff::1", // documentation
	"5f00::1",                 // SRv6
	"fc00::1", "fd12:3456::1", // unique local
	"fe80::1", "fec0::1", // link-local, site-local
	"ff02::1", "ff0e::1", // multicast
	"4000::1", "e000::1", // outside 2000::/3
}

var publicAddresses = []string{"8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"}

func TestPublicAddressSpecialPurpose(t *testing.T) {
	for _, a := range deniedAddresses {
		if publicAddress(netip.MustParseAddr(a)) {
			t.Errorf("%s counted as public", a)
		}
	}
	if publicAddress(netip.MustParseAddr("fe80::1%eth0")) {
		t.Error("a scoped address counted as public")
	}
	for _, a := range publicAddresses {
		if !publicAddress(netip.MustParseAddr(a)) {
			t.Errorf("%s refused (%s)", a, deniedRange(netip.MustParseAddr(a)))
		}
	}
}

// TestRegistrationRefusesSpecialPurpose: an https URL with any of the
// special-purpose addresses as its host is refused at registration.
func TestRegistrationRefusesSpecialPurpose(t *testing.T) {
	svc, _ := newService(t, Config{})
	host := func(a string) string {
		if strings.Contains(a, ":") {
			return "[" + a + "]"
		}
		return a
	}
	for _, a := range deniedAddresses {
		var inv *InvalidError
		if _, _, err := svc.Create(t.Context(), "acme", Registration{URL: "https://" + host(a) + "/hook"}, "test"); !errors.As(err, &inv) {
			t.Errorf("https://%s/hook: %v, want refused", host(a), err)
		}
	}
	for i, a := range publicAddresses {
		if _, _, err := svc.Create(t.Context(), fmt.Sprint("pub", i), Registration{URL: "https://" + host(a) + "/hook"}, "test"); err != nil {
			t.Errorf("https://%s/hook: %v", host(a), err)
		}
	}
}

// fakeDNS answers A and AAAA queries for names under ".test." from
// addrs (name without the dot → address) over UDP on loopback.
func fakeDNS(t *testing.T, addrs map[string]netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true})
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			name := strings.TrimSuffix(q.Name.String(), ".")
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			if a, ok := addrs[name]; ok {
				switch {
				case q.Type == dnsmessage.TypeA && a.Is4():
					_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
				case q.Type == dnsmessage.TypeAAAA && !a.Is4():
					_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
				}
			}
			msg, err := b.Finish()
			if err != nil {
				continue
			}
			_, _ = pc.WriteTo(msg, from)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// TestDialRefusesResolvedSpecialPurpose: a DNS name whose only record is a
// special-purpose address passes registration (it is a name) but fails at
// dial time, before any connection; the same resolver's answer for a
// loopback server is dialled when private addresses are allowed, so the
// check, not a broken resolver, is what refuses.
func TestDialRefusesResolvedSpecialPurpose(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	addrs := map[string]netip.Addr{"dms.loopback.test": netip.MustParseAddr("127.0.0.1")}
	for i, a := range deniedAddresses {
		addrs[fmt.Sprintf("h%d.evil.test", i)] = netip.MustParseAddr(a)
	}
	resolver := fakeDNS(t, addrs)

	allowed := newClient(5*time.Second, true, resolver)
	resp, err := allowed.Get(fmt.Sprintf("http://dms.loopback.test:%d/", port))
	if err != nil {
		t.Fatalf("allowed client through the fake resolver: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("allowed client: %d requests reached the server, want 1", hits.Load())
	}

	svc, _ := newService(t, Config{})
	if _, _, err := svc.Create(t.Context(), "acme", Registration{URL: fmt.Sprintf("https://h0.evil.test:%d/hook", port)}, "test"); err != nil {
		t.Fatalf("registration of a DNS name: %v", err)
	}
	client := newClient(5*time.Second, false, resolver)
	for i, a := range deniedAddresses {
		u := fmt.Sprintf("https://h%d.evil.test:%d/hook", i, port)
		if _, err := client.Get(u); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s resolving to %s: %v, want ErrForbiddenAddress", u, a, err)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the server, want only the allowed one", hits.Load())
	}
}
