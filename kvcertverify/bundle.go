package kvcertverify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

const (
	// DefaultMaxBundleSize is the largest certificate bundle, in bytes, a
	// client reads from the store unless WithMaxBundleSize says otherwise.
	// A bundle holds two or three certificates of well under 1 KiB each.
	DefaultMaxBundleSize = 64 << 10
	// DefaultMaxBundleCerts is the most certificates a bundle may hold
	// unless WithMaxBundleCerts says otherwise.
	DefaultMaxBundleCerts = 8

	pemCertType = "CERTIFICATE"
	pemBegin    = "-----BEGIN " + pemCertType + "-----"
)

// ParseBundle parses a PEM certificate bundle as a server publishes it: one
// or more "CERTIFICATE" blocks without headers, separated by nothing but
// white space, each holding exactly one DER certificate. It rejects
// anything else, a bundle over maxSize bytes or with more than maxCerts
// certificates (zero or less means the defaults), and duplicates. Every
// error matches ErrInvalidBundle.
//
// ParseBundle checks the form only; ClientCredentials also checks that each
// certificate suits the address it is published for.
func ParseBundle(data []byte, maxSize, maxCerts int) ([]*x509.Certificate, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxBundleSize
	}
	if maxCerts <= 0 {
		maxCerts = DefaultMaxBundleCerts
	}
	if len(data) > maxSize {
		return nil, bundleErr("%d bytes, over the %d-byte limit", len(data), maxSize)
	}
	// Count before parsing anything, so a huge bundle costs no more than a
	// scan.
	if n := bytes.Count(data, []byte("-----BEGIN")); n > maxCerts {
		return nil, bundleErr("%d PEM blocks, over the limit of %d certificates", n, maxCerts)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte(pemBegin)) {
			return nil, bundleErr("certificate %d: data outside a %q PEM block", len(certs)+1, pemCertType)
		}
		var b *pem.Block
		before := rest
		b, rest = pem.Decode(rest)
		// pem.Decode skips a malformed block, and whatever follows it, in
		// search of a good one: what it consumed must hold one block only.
		if b == nil || bytes.Count(before[:len(before)-len(rest)], []byte("-----BEGIN")) != 1 {
			return nil, bundleErr("certificate %d: malformed PEM block", len(certs)+1)
		}
		if b.Type != pemCertType {
			return nil, bundleErr("certificate %d: PEM block type %q, want %q", len(certs)+1, b.Type, pemCertType)
		}
		if len(b.Headers) != 0 {
			return nil, bundleErr("certificate %d: PEM block has headers", len(certs)+1)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, bundleErr("certificate %d: %v", len(certs)+1, err)
		}
		for _, o := range certs {
			if bytes.Equal(o.Raw, c.Raw) {
				return nil, bundleErr("certificate %d: duplicate", len(certs)+1)
			}
		}
		certs = append(certs, c)
		if len(certs) > maxCerts {
			return nil, bundleErr("over the limit of %d certificates", maxCerts)
		}
	}
	if len(certs) == 0 {
		return nil, bundleErr("no certificates")
	}
	return certs, nil
}

// EncodeBundle returns the PEM bundle of certs, in order, as servers
// publish it.
func EncodeBundle(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: pemCertType, Bytes: c.Raw})
	}
	return b.Bytes()
}

func bundleErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidBundle}, args...)...)
}

// checkCert reports whether c may be pinned for a server at host: a
// self-signed end-entity certificate for server authentication, naming host,
// with a key of an acceptable kind and size.
func checkCert(c *x509.Certificate, host string) error {
	if c.BasicConstraintsValid && c.IsCA {
		return errors.New("is a CA certificate")
	}
	if c.KeyUsage&x509.KeyUsageCertSign != 0 {
		return errors.New("may sign certificates")
	}
	if len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return errors.New("not for server authentication")
	}
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%d-bit RSA key, under 2048 bits", k.N.BitLen())
		}
	default:
		return fmt.Errorf("unsupported public key type %T", c.PublicKey)
	}
	if !c.NotAfter.After(c.NotBefore) {
		return errors.New("NotAfter is not after NotBefore")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		for _, a := range c.IPAddresses {
			if b, ok := netip.AddrFromSlice(a); ok && b.Unmap() == ip {
				goto named
			}
		}
		return fmt.Errorf("not valid for IP %s (IP SANs %v)", host, c.IPAddresses)
	} else if !slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(strings.TrimSuffix(n, "."), host) }) {
		return fmt.Errorf("not valid for host %s (DNS SANs %q)", host, c.DNSNames)
	}
named:
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return fmt.Errorf("not self-signed: %v", err)
	}
	return nil
}

// canonicalAddr returns the canonical form of a "host:port" address, which
// is how it appears in store keys, and its host. An IP address is written as
// netip writes it ("10.0.1.7:8443", "[::1]:8443", IPv4-mapped IPv6 as IPv4);
// a DNS name is lower-cased without a trailing dot.
func canonicalAddr(addr string) (canon, host string, err error) {
	h, p, err := splitHostPort(addr)
	if err != nil {
		return "", "", err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || strings.TrimLeft(p, "0123456789") != "" {
		return "", "", fmt.Errorf("invalid port in address %q", addr)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return "", "", fmt.Errorf("address %q has an IPv6 zone", addr)
		}
		ip = ip.Unmap()
		return netip.AddrPortFrom(ip, uint16(port)).String(), ip.String(), nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if !validDNSName(h) {
		return "", "", fmt.Errorf("invalid host in address %q", addr)
	}
	return h + ":" + strconv.FormatUint(port, 10), h, nil
}

func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("address %q has no port", addr)
	}
	host, port = addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", fmt.Errorf("malformed address %q", addr)
		}
		host = host[1 : len(host)-1]
		if !strings.Contains(host, ":") {
			return "", "", fmt.Errorf("malformed address %q", addr)
		}
	} else if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("address %q: IPv6 host must be in brackets", addr)
	}
	if host == "" {
		return "", "", fmt.Errorf("address %q has no host", addr)
	}
	return host, port, nil
}

func validDNSName(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
