package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress is the error of a request to a private, loopback or
// otherwise internal address while those are not allowed.
var ErrForbiddenAddress = errors.New("webhook: address not allowed")

// deniedPrefixes are the ranges of the IANA IPv4 and IPv6 special-purpose
// address registries that a webhook may not reach: not globally reachable,
// reserved, or a form that embeds an IPv4 address (NAT64, 6to4, Teredo,
// SIIT, IPv4-compatible, IPv4-mapped), which a translator on the way would
// turn into whatever address it embeds, 169.254.169.254 or 10.0.0.1 as
// well as a public one. Embedding forms are refused outright: a webhook
// that has an IPv4 address is registered with that address.
var deniedPrefixes = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved and limited broadcast"},

	{netip.MustParsePrefix("::/96"), "IPv4-compatible, unspecified and loopback"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated (SIIT)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 well-known prefix"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 local-use prefix"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing (SRv6) SIDs"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// globalIPv6 is the only IPv6 range IANA allocates for global unicast;
// the rest of the space is reserved.
var globalIPv6 = netip.MustParsePrefix("2000::/3")

// deniedRange names the special-purpose range ip falls in, or "" for a
// public unicast address. An address is taken as written: an IPv4-mapped
// one is not unmapped first, it is refused as a mapped form.
func deniedRange(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	if ip.Zone() != "" {
		return "scoped"
	}
	for _, d := range deniedPrefixes {
		if d.prefix.Contains(ip) {
			return d.name
		}
	}
	if ip.Is6() && !globalIPv6.Contains(ip) {
		return "reserved IPv6"
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return "not global unicast"
	}
	return ""
}

// publicAddress reports whether ip is a public unicast address.
func publicAddress(ip netip.Addr) bool { return deniedRange(ip) == "" }

// newClient returns the HTTP client of deliveries: it follows no redirect
// and, unless allowPrivate, refuses to connect to anything but a public
// address. The check runs on the address being dialled, after name
// resolution, so DNS cannot point it inside. resolver nil is the system's.
func newClient(timeout time.Duration, allowPrivate bool, resolver *net.Resolver) *http.Client {
	d := &net.Dialer{Timeout: timeout, Resolver: resolver}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
			}
			if why := deniedRange(ap.Addr()); why != "" {
				return fmt.Errorf("%w: %s (%s)", ErrForbiddenAddress, ap.Addr(), why)
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a proxy would dial for us, past the check
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
