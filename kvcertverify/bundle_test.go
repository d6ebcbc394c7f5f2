package kvcertverify

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseBundle(t *testing.T) {
	now := time.Now()
	a := selfSigned(t, leafFor("10.0.0.1:1", now.Add(-time.Hour), now.Add(time.Hour)))
	b := selfSigned(t, leafFor("10.0.0.1:1", now.Add(-time.Hour), now.Add(time.Hour)))
	pa, pb := EncodeBundle(a), EncodeBundle(b)
	for _, tc := range []struct {
		name string
		in   []byte
		n    int
		want string // error; empty for success
	}{
		{"one", pa, 1, ""},
		{"two", EncodeBundle(a, b), 2, ""},
		{"white space", []byte("\n  " + string(pa) + "\r\n\t" + string(pb) + "\n\n"), 2, ""},
		{"empty", nil, 0, "kvcertverify: invalid certificate bundle: no certificates"},
		{"blank", []byte(" \n"), 0, "kvcertverify: invalid certificate bundle: no certificates"},
		{"leading junk", append([]byte("junk\n"), pa...), 0, `kvcertverify: invalid certificate bundle: certificate 1: data outside a "CERTIFICATE" PEM block`},
		{"trailing junk", append(append([]byte{}, pa...), "junk"...), 0, `kvcertverify: invalid certificate bundle: certificate 2: data outside a "CERTIFICATE" PEM block`},
		{"truncated", pa[:len(pa)-30], 0, "kvcertverify: invalid certificate bundle: certificate 1: malformed PEM block"},
		{"private key", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0, "kvcertverify: invalid certificate bundle: certificate 1: malformed PEM block"},
		{"headers", []byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n" + strings.Join(strings.Split(string(pa), "\n")[1:], "\n")), 0,
			"kvcertverify: invalid certificate bundle: certificate 1: PEM block has headers"},
		{"malformed block before a good one", append([]byte("-----BEGIN CERTIFICATE-----junk\nanything at all\n"), pa...), 0,
			"kvcertverify: invalid certificate bundle: certificate 1: malformed PEM block"},
		{"not DER", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0, "kvcertverify: invalid certificate bundle: certificate 1: x509: malformed certificate"},
		{"trailing DER", EncodeBundle(&x509.Certificate{Raw: append(append([]byte{}, a.Raw...), 0)}), 0, "kvcertverify: invalid certificate bundle: certificate 1: x509: trailing data"},
		{"duplicate", EncodeBundle(a, b, a), 0, "kvcertverify: invalid certificate bundle: certificate 3: duplicate"},
		{"too many", bytes.Repeat(pa, 9), 0, "kvcertverify: invalid certificate bundle: 9 PEM blocks, over the limit of 8 certificates"},
		{"too large", bytes.Repeat([]byte{' '}, DefaultMaxBundleSize+1), 0, "kvcertverify: invalid certificate bundle: 65537 bytes, over the 65536-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseBundle(tc.in, 0, 0)
			if tc.want == "" {
				if err != nil || len(certs) != tc.n {
					t.Fatalf("got %d certs, %v; want %d", len(certs), err, tc.n)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidBundle) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
	if _, err := ParseBundle(EncodeBundle(a, b), 0, 1); err == nil || err.Error() != "kvcertverify: invalid certificate bundle: 2 PEM blocks, over the limit of 1 certificates" {
		t.Fatalf("maxCerts: %v", err)
	}
}

func TestCheckCert(t *testing.T) {
	now := time.Now()
	good := leafFor("10.0.0.1:1", now, now.Add(time.Hour))
	if err := checkCert(selfSigned(t, good), "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := checkCert(selfSigned(t, leafFor("svc.example:1", now, now.Add(time.Hour))), "SVC.example"); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*x509.Certificate)) *x509.Certificate {
		c := *leafFor("10.0.0.1:1", now, now.Add(time.Hour))
		f(&c)
		return &c
	}
	for _, tc := range []struct {
		name string
		tmpl *x509.Certificate
		host string
		want string
	}{
		{"other IP", good, "10.0.0.2", "not valid for IP 10.0.0.2 (IP SANs [10.0.0.1])"},
		{"IP for DNS", good, "svc.example", `not valid for host svc.example (DNS SANs [])`},
		{"CA", mod(func(c *x509.Certificate) { c.IsCA = true; c.KeyUsage |= x509.KeyUsageCertSign }), "10.0.0.1", "is a CA certificate"},
		{"cert sign", mod(func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }), "10.0.0.1", "may sign certificates"},
		{"client auth", mod(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }), "10.0.0.1", "not for server authentication"},
		{"backwards", mod(func(c *x509.Certificate) { c.NotAfter = c.NotBefore.Add(-time.Hour) }), "10.0.0.1", "NotAfter is not after NotBefore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCert(selfSigned(t, tc.tmpl), tc.host)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// Signed by another key: not self-signed.
	c := selfSigned(t, leafFor("10.0.0.1:1", now, now.Add(time.Hour)))
	other := selfSigned(t, leafFor("10.0.0.1:1", now, now.Add(time.Hour)))
	c.Signature = other.Signature
	if err := checkCert(c, "10.0.0.1"); err == nil || !strings.HasPrefix(err.Error(), "not self-signed: ") {
		t.Fatalf("tampered signature: %v", err)
	}
}

func FuzzParseBundle(f *testing.F) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a := selfSigned(f, leafFor("10.0.0.1:1", now, now.Add(time.Hour)))
	b := selfSigned(f, leafFor("svc.example:1", now, now.Add(time.Hour)))
	f.Add(EncodeBundle(a))
	f.Add(EncodeBundle(a, b))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseBundle(data, 0, 0)
		if err != nil {
			if certs != nil || !errors.Is(err, ErrInvalidBundle) {
				t.Fatalf("error %v with %d certs, or not ErrInvalidBundle", err, len(certs))
			}
			return
		}
		if len(certs) == 0 || len(certs) > DefaultMaxBundleCerts {
			t.Fatalf("%d certs", len(certs))
		}
		// Nothing was skipped: every block in the input is a certificate.
		if n := bytes.Count(data, []byte("-----BEGIN")); n != len(certs) {
			t.Fatalf("%d certs from %d PEM blocks", len(certs), n)
		}
		// Round trip: what parsed re-encodes to a bundle that parses the same.
		again, err := ParseBundle(EncodeBundle(certs...), 0, 0)
		if err != nil || len(again) != len(certs) {
			t.Fatalf("re-parse: %d certs, %v", len(again), err)
		}
		for i := range certs {
			if !bytes.Equal(certs[i].Raw, again[i].Raw) {
				t.Fatalf("certificate %d changed", i)
			}
			checkCert(certs[i], "10.0.0.1") // must not panic
		}
	})
}

func TestCanonicalAddr(t *testing.T) {
	for _, tc := range []struct{ in, canon, host string }{
		{"10.0.1.7:8443", "10.0.1.7:8443", "10.0.1.7"},
		{"[::1]:80", "[::1]:80", "::1"},
		{"[0:0::1]:080", "[::1]:80", "::1"},
		{"[::ffff:1.2.3.4]:5", "1.2.3.4:5", "1.2.3.4"},
		{"A.Example.:443", "a.example:443", "a.example"},
	} {
		canon, host, err := canonicalAddr(tc.in)
		if err != nil || canon != tc.canon || host != tc.host {
			t.Errorf("canonicalAddr(%q) = %q, %q, %v; want %q, %q", tc.in, canon, host, err, tc.canon, tc.host)
		}
	}
	for _, in := range []string{"", ":1", "a:", "a:65536", "a:-1", "[::1:80", "[1.2.3.4]:80", "a..b:1", "-a:1", "a b:1", strings.Repeat("a", 254) + ":1", "a:+1"} {
		if _, _, err := canonicalAddr(in); err == nil {
			t.Errorf("canonicalAddr(%q): no error", in)
		}
	}
}
