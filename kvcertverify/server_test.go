package kvcertverify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

func TestServerCertificate(t *testing.T) {
	for _, tc := range []struct {
		name, addr, key, host string
		ip                    bool
	}{
		{"ipv4", "10.0.1.7:8443", "certs/10.0.1.7:8443", "10.0.1.7", true},
		{"ipv6", "[::1]:8443", "certs/[::1]:8443", "::1", true},
		{"ipv4-mapped", "[::ffff:10.0.1.7]:8443", "certs/10.0.1.7:8443", "10.0.1.7", true},
		{"dns", "Svc.Example.COM.:443", "certs/svc.example.com:443", "svc.example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := kvstore.NewMemory()
			clock := newFakeClock()
			s, err := NewServerTransportCredentials(context.Background(), store, tc.addr, WithTime(clock.Now), WithLifetime(time.Hour), WithBackdate(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Address()+"" == "" || "certs/"+s.Address() != tc.key {
				t.Fatalf("Address() = %q, want key %q", s.Address(), tc.key)
			}
			certs := get(t, store, tc.key)
			if len(certs) != 1 || !bytes.Equal(certs[0].Raw, s.Certificate().Raw) {
				t.Fatalf("published %d certs, want the served one", len(certs))
			}
			c := certs[0]
			if err := checkCert(c, tc.host); err != nil {
				t.Fatalf("checkCert: %v", err)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Error("certificate is a CA or lacks basic constraints")
			}
			if tc.ip != (len(c.IPAddresses) == 1 && len(c.DNSNames) == 0) {
				t.Errorf("SANs: IPs %v DNS %v", c.IPAddresses, c.DNSNames)
			}
			if got, want := c.NotBefore, clock.Now().Add(-time.Minute); !got.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", got, want)
			}
			if got, want := c.NotAfter, clock.Now().Add(time.Hour); !got.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", got, want)
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", c.SerialNumber)
			}
		})
	}
}

func TestServerOptionErrors(t *testing.T) {
	store := kvstore.NewMemory()
	for _, tc := range []struct {
		name string
		addr string
		opts []ServerOption
		want string
	}{
		{"no port", "10.0.0.1", nil, `kvcertverify: address "10.0.0.1" has no port`},
		{"bad port", "10.0.0.1:http", nil, `kvcertverify: invalid port in address "10.0.0.1:http"`},
		{"zero port", "10.0.0.1:0", nil, `kvcertverify: invalid port in address "10.0.0.1:0"`},
		{"bad host", "a_b:1", nil, `kvcertverify: invalid host in address "a_b:1"`},
		{"unbracketed v6", "::1:80", nil, `kvcertverify: address "::1:80": IPv6 host must be in brackets`},
		{"zone", "[fe80::1%eth0]:80", nil, `kvcertverify: address "[fe80::1%eth0]:80" has an IPv6 zone`},
		{"lifetime", "10.0.0.1:1", []ServerOption{WithLifetime(0)}, "kvcertverify: WithLifetime: 0s is not positive"},
		{"rotate", "10.0.0.1:1", []ServerOption{WithRotateAt(1)}, "kvcertverify: WithRotateAt: 1 is not between 0 and 1"},
		{"delay", "10.0.0.1:1", []ServerOption{WithLifetime(time.Hour), WithPropagationDelay(30 * time.Minute)},
			"kvcertverify: a rotation at 40m0s plus a propagation delay of 30m0s does not end before the 1h0m0s lifetime"},
		{"prefix", "10.0.0.1:1", []ServerOption{WithPrefix("/abs/")}, "kvcertverify: store key for 10.0.0.1:1: kvstore: invalid key"},
		{"time", "10.0.0.1:1", []ServerOption{WithTime(nil)}, "kvcertverify: WithTime: nil function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServerTransportCredentials(context.Background(), store, tc.addr, tc.opts...)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want prefix %q", err, tc.want)
			}
		})
	}
	if _, err := NewServerTransportCredentials(context.Background(), nil, "10.0.0.1:1"); err == nil || err.Error() != "kvcertverify: nil store" {
		t.Fatalf("nil store: %v", err)
	}
}

func TestServerPublishFailure(t *testing.T) {
	faulty := kvstoretest.NewFaulty(kvstore.NewMemory())
	injected := errors.New("disk on fire")
	faulty.Fail(kvstoretest.OpPut, injected)
	_, err := NewServerTransportCredentials(context.Background(), faulty, "10.0.0.1:1")
	if !errors.Is(err, injected) || !strings.HasPrefix(err.Error(), "kvcertverify: server 10.0.0.1:1: publish certificate: ") {
		t.Fatalf("error %v, want the Put error", err)
	}
	// A slow store: the caller's context bounds the first Put.
	faulty.Heal()
	faulty.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := NewServerTransportCredentials(ctx, faulty, "10.0.0.1:1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow store: %v", err)
	}
}

func TestServerRotation(t *testing.T) {
	store := kvstore.NewMemory()
	clock := newFakeClock()
	events := make(chan string, 10)
	s, err := NewServerTransportCredentials(context.Background(), store, "10.0.0.1:1",
		withTestHooks(clock, events), WithLifetime(9*time.Hour), WithPropagationDelay(time.Minute), WithBackdate(0))
	if err != nil {
		t.Fatal(err)
	}
	key := "certs/10.0.0.1:1"
	first := s.Certificate()
	expect := func(want string) {
		t.Helper()
		select {
		case e := <-events:
			if e != want {
				t.Fatalf("event %q, want %q", e, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q event", want)
		}
	}
	published := func(want ...[]byte) {
		t.Helper()
		certs := get(t, store, key)
		if len(certs) != len(want) {
			t.Fatalf("published %d certificates, want %d", len(certs), len(want))
		}
		for i := range want {
			if !bytes.Equal(certs[i].Raw, want[i]) {
				t.Fatalf("published certificate %d differs", i)
			}
		}
	}

	clock.Advance(6*time.Hour - time.Second) // just before 2/3 of the lifetime
	published(first.Raw)
	clock.Advance(time.Second)
	expect("published")
	certs := get(t, store, key)
	next := certs[0]
	published(next.Raw, first.Raw)
	if !bytes.Equal(s.Certificate().Raw, first.Raw) {
		t.Fatal("switched before the propagation delay")
	}
	clock.Advance(time.Minute)
	expect("switched")
	if !bytes.Equal(s.Certificate().Raw, next.Raw) {
		t.Fatal("not switched after the propagation delay")
	}
	hello := &tlsHello{}
	if c, err := s.GetCertificate(hello.info()); err != nil || !bytes.Equal(c.Certificate[0], next.Raw) {
		t.Fatalf("GetCertificate: %v", err)
	}
	// The first certificate stays published until it expires.
	clock.Advance(3*time.Hour - time.Minute)
	published(next.Raw, first.Raw)
	clock.Advance(time.Second)
	expect("pruned")
	published(next.Raw)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(context.Background(), key); !errors.Is(err, kvstore.ErrNotFound) {
		t.Fatalf("after Close: %v, want not found", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.GetCertificate(hello.info()); err == nil || err.Error() != "kvcertverify: server 10.0.0.1:1: credentials closed" {
		t.Fatalf("GetCertificate after Close: %v", err)
	}
}

func TestServerRotationRetry(t *testing.T) {
	faulty := kvstoretest.NewFaulty(kvstore.NewMemory())
	clock := newFakeClock()
	events := make(chan string, 10)
	logged := make(chan string, 10)
	s, err := NewServerTransportCredentials(context.Background(), faulty, "10.0.0.1:1",
		withTestHooks(clock, events), WithLifetime(3*time.Hour), WithPropagationDelay(0), WithLogger(chanLogger(logged)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	faulty.FailNext(kvstoretest.OpPut, 1, errors.New("throttled"))
	clock.Advance(2 * time.Hour)
	select {
	case m := <-logged:
		if !strings.Contains(m, "kvcertverify: server 10.0.0.1:1: publish certificate: ") || !strings.Contains(m, "throttled") {
			t.Fatalf("logged %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("failure not logged")
	}
	first := s.Certificate()
	// The retry comes after a backoff of a second.
	for {
		select {
		case e := <-events:
			if e != "published" {
				t.Fatalf("event %q", e)
			}
			if e := <-events; e != "switched" {
				t.Fatalf("event %q", e)
			}
			if bytes.Equal(s.Certificate().Raw, first.Raw) {
				t.Fatal("not rotated")
			}
			return
		case <-time.After(10 * time.Millisecond):
			clock.Advance(time.Second)
		}
	}
}

type chanLogger chan string

func (l chanLogger) Printf(format string, args ...any) {
	select {
	case l <- sprintf(format, args...):
	default:
	}
}

func TestServerCredentialsMisuse(t *testing.T) {
	s, err := NewServerTransportCredentials(context.Background(), kvstore.NewMemory(), "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := net.Pipe()
	defer b.Close()
	if _, _, err := s.ClientHandshake(context.Background(), "x", a); err == nil {
		t.Fatal("client handshake with server credentials")
	}
	if _, err := a.Write([]byte{0}); err == nil {
		t.Fatal("raw conn not closed")
	}
	if s.Clone() != s || s.Info().SecurityProtocol != "tls" || s.OverrideServerName("x") != nil {
		t.Fatal("Clone/Info/OverrideServerName")
	}
}

func TestServerHandshakeTimeout(t *testing.T) {
	s, err := NewServerTransportCredentials(context.Background(), kvstore.NewMemory(), "10.0.0.1:1", WithHandshakeTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := net.Pipe() // a silent client
	defer b.Close()
	_, _, err = s.ServerHandshake(a)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "kvcertverify: server 10.0.0.1:1: handshake with") {
		t.Fatalf("error %v, want a deadline", err)
	}
}

// TestServerRotateNow rotates on demand under a real gRPC server: the
// bundle holds [next, current], a client that dials afresh pins the new
// certificate, and Rotate after Close says the credentials are closed.
func TestServerRotateNow(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "", WithPropagationDelay(10*time.Millisecond))
	before := ts.creds.Certificate()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.creds.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	after := ts.creds.Certificate()
	if bytes.Equal(before.Raw, after.Raw) {
		t.Fatal("Rotate did not change the served certificate")
	}
	certs := get(t, store, "certs/"+ts.addr)
	if len(certs) != 2 || !bytes.Equal(certs[0].Raw, after.Raw) || !bytes.Equal(certs[1].Raw, before.Raw) {
		t.Fatalf("published bundle has %d certs, want [next, current]", len(certs))
	}
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(NewClientTransportCredentials(store)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatalf("RPC after Rotate: %v", err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || !bytes.Equal(info.State.PeerCertificates[0].Raw, after.Raw) {
		t.Fatal("the client did not see the rotated certificate")
	}

	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := ts.creds.Rotate(cctx); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Rotate with a canceled ctx = %v, want context.Canceled", err)
	}
	ts.creds.Close()
	if err := ts.creds.Rotate(ctx); err == nil || err.Error() != "kvcertverify: rotate: credentials closed" {
		t.Fatalf("Rotate after Close = %v", err)
	}
}

// TestServerRotateBounded: however often Rotate is called within a
// lifetime, the published bundle stays small enough for clients to accept.
func TestServerRotateBounded(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "", WithPropagationDelay(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var served [][]byte
	for range DefaultMaxBundleCerts + 2 {
		served = append(served, ts.creds.Certificate().Raw)
		if err := ts.creds.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	certs := get(t, store, "certs/"+ts.addr)
	if len(certs) != maxPublished {
		t.Fatalf("published %d certificates after %d rotations, want %d", len(certs), len(served), maxPublished)
	}
	// Newest first: the served one, then the ones it replaced.
	if !bytes.Equal(certs[0].Raw, ts.creds.Certificate().Raw) {
		t.Fatal("the served certificate is not first")
	}
	for i := 1; i < len(certs); i++ {
		if !bytes.Equal(certs[i].Raw, served[len(served)-i]) {
			t.Fatalf("certificate %d is not the one served %d rotations ago", i, i)
		}
	}
	creds := NewClientTransportCredentials(store)
	defer creds.Close()
	if _, err := handshake(ctx, creds, ts.addr); err != nil {
		t.Fatalf("handshake after %d rotations: %v", len(served), err)
	}
}
