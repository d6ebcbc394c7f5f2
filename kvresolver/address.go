package kvresolver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

const (
	// maxAddressLen bounds an address: a 253-byte host name, a colon and a
	// port, with room for IPv6 brackets.
	maxAddressLen = 261
	// maxAddresses bounds how many addresses one lookup may return.
	maxAddresses = 10000
)

// ValidateAddress checks that addr is a "host:port" address a client can
// dial, and returns its canonical form: an IP address as netip formats it
// (IPv6 in brackets), a host name in lower case, the port in decimal
// without leading zeros. The host must be an IP address with no zone or a
// host name of letters, digits, '-' and '_' in dot-separated labels; the
// port must be 1 to 65535.
func ValidateAddress(addr string) (string, error) {
	if len(addr) > maxAddressLen {
		return "", fmt.Errorf("kvresolver: invalid address %.40q...: %d bytes, over the %d-byte limit", addr, len(addr), maxAddressLen)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("kvresolver: invalid address %q: %w", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("kvresolver: invalid address %q: no host (give the address clients dial, not a listen address)", addr)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return "", fmt.Errorf("kvresolver: invalid address %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("kvresolver: invalid address %q: zoned IPv6 addresses are not supported", addr)
		}
		return netip.AddrPortFrom(ip, port).String(), nil
	}
	if strings.HasPrefix(addr, "[") {
		return "", fmt.Errorf("kvresolver: invalid address %q: brackets around a host that is not an IP address", addr)
	}
	host = strings.ToLower(host)
	if err := checkHostname(host); err != nil {
		return "", fmt.Errorf("kvresolver: invalid address %q: %w", addr, err)
	}
	return host + ":" + strconv.Itoa(int(port)), nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("no port")
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("port %q out of range", s)
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q is not a decimal number", s)
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range 1-65535", s)
	}
	return uint16(n), nil
}

// checkHostname checks a lower-cased host name.
func checkHostname(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("host name of %d bytes, over 253", len(h))
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return fmt.Errorf("empty label in host name")
		}
		if len(l) > 63 {
			return fmt.Errorf("host name label of %d bytes, over 63", len(l))
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host name label %q begins or ends with '-'", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name", c)
			}
		}
	}
	// "1.2.3.400" did not parse as an IP address; do not let a resolver
	// take it for a name.
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("host %q is neither an IP address nor a host name", h)
	}
	return nil
}

// normalize validates addrs and returns the canonical forms, sorted and
// without duplicates, and the error of each invalid one.
func normalize(addrs []string) (valid []string, bad []error) {
	valid = make([]string, 0, len(addrs))
	for _, a := range addrs {
		c, err := ValidateAddress(a)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		valid = append(valid, c)
	}
	slices.Sort(valid)
	return slices.Compact(valid), bad
}

// maxJoined is how many errors joinSome names; it counts the rest.
const maxJoined = 8

// joinSome joins the first few of errs and counts the others, so that an
// error or a log line about thousands of bad addresses or records stays
// small (a resolver error ends up in every failing RPC's status).
func joinSome(errs []error) error {
	if len(errs) <= maxJoined {
		return errors.Join(errs...)
	}
	return errors.Join(append(errs[:maxJoined:maxJoined], fmt.Errorf("(and %d more)", len(errs)-maxJoined))...)
}
