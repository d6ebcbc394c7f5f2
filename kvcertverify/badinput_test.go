package kvcertverify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

// rawStore is a Store without a value size cap (a user's own, say): Get of
// key returns val as it is.
type rawStore struct {
	kvstore.Store
	key string
	val []byte
}

func (r rawStore) Get(ctx context.Context, key string) ([]byte, error) {
	if key == r.key {
		return r.val, nil
	}
	return r.Store.Get(ctx, key)
}

// TestBadInput serves a real server and publishes something wrong for its
// address: every handshake fails closed, naming the address and the reason.
func TestBadInput(t *testing.T) {
	dir, err := kvstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, dir, "")
	addr, key := ts.addr, "certs/"+ts.addr
	own, err := dir.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	other := EncodeBundle(selfSigned(t, leafFor("10.9.9.9:1", now.Add(-time.Hour), now.Add(time.Hour))))
	caTmpl := leafFor(addr, now.Add(-time.Hour), now.Add(time.Hour))
	caTmpl.IsCA, caTmpl.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	ca := EncodeBundle(selfSigned(t, caTmpl))
	many := bytes.Repeat(own, 10000)
	injected := errors.New("access denied")

	for _, tc := range []struct {
		name  string
		value []byte                                    // published for addr, if not nil
		store func(kvstore.Store) kvstore.Store         // wraps the store, if not nil
		opts  []ClientOption                            // client options
		prep  func(t *testing.T, f *kvstoretest.Faulty) // before the handshake
		want  string                                    // error after "kvcertverify: server <addr>: "
		is    error
	}{
		{name: "malformed PEM", value: own[:len(own)/2], want: "invalid certificate bundle: certificate 1: malformed PEM block", is: ErrInvalidBundle},
		{name: "garbage", value: []byte("\x00\xff not a bundle"), want: `invalid certificate bundle: certificate 1: data outside a "CERTIFICATE" PEM block`, is: ErrInvalidBundle},
		{name: "empty", value: []byte{}, want: "invalid certificate bundle: no certificates", is: ErrInvalidBundle},
		{name: "another host", value: other, want: "invalid certificate bundle: certificate 1: not valid for IP 127.0.0.1 (IP SANs [10.9.9.9])", is: ErrInvalidBundle},
		{name: "another host next to ours", value: append(append([]byte{}, own...), other...), want: "invalid certificate bundle: certificate 2: not valid for IP 127.0.0.1", is: ErrInvalidBundle},
		{name: "CA certificate", value: ca, want: "invalid certificate bundle: certificate 1: is a CA certificate", is: ErrInvalidBundle},
		{name: "expired", opts: []ClientOption{WithTime(func() time.Time { return time.Now().Add(48 * time.Hour) })}, want: "certificate expired or not yet valid: certificate expired at", is: ErrExpired},
		{name: "not yet valid", opts: []ClientOption{WithTime(func() time.Time { return time.Now().Add(-time.Hour) })}, want: "certificate expired or not yet valid: certificate not valid until", is: ErrExpired},
		{name: "10,000 certificates", store: func(s kvstore.Store) kvstore.Store { return rawStore{s, key, many} },
			want: fmt.Sprintf("invalid certificate bundle: %d bytes, over the 65536-byte limit", len(many)), is: ErrInvalidBundle},
		{name: "10,000 certificates within the size cap", store: func(s kvstore.Store) kvstore.Store { return rawStore{s, key, many} },
			opts: []ClientOption{WithMaxBundleSize(8 << 20)},
			want: "invalid certificate bundle: 10000 PEM blocks, over the limit of 8 certificates", is: ErrInvalidBundle},
		{name: "over our cap", store: func(s kvstore.Store) kvstore.Store { return rawStore{s, key, bytes.Repeat([]byte{' '}, 100<<10)} },
			want: "invalid certificate bundle: 102400 bytes, over the 65536-byte limit", is: ErrInvalidBundle},
		{name: "over the store's cap", want: "read certificate bundle", is: kvstore.ErrValueTooLarge,
			prep: func(t *testing.T, _ *kvstoretest.Faulty) {
				// Plant an oversize value behind the folder store's back.
				f := filepath.Join(dir.Root(), "certs", addr, ".value")
				if err := os.WriteFile(f, bytes.Repeat([]byte{' '}, kvstore.MaxValueSize+1), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "store error", want: `read certificate bundle "` + key + `": kvstoretest: injected Get fault: access denied`, is: injected,
			prep: func(t *testing.T, f *kvstoretest.Faulty) { f.Fail(kvstoretest.OpGet, injected) }},
		{name: "deleted", want: "revoked: no certificate published for the address", is: ErrRevoked,
			prep: func(t *testing.T, _ *kvstoretest.Faulty) {
				if err := dir.Delete(context.Background(), key); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := dir.Put(context.Background(), key, own); err != nil {
				t.Fatal(err)
			}
			if tc.value != nil {
				if err := dir.Put(context.Background(), key, tc.value); err != nil {
					t.Fatal(err)
				}
			}
			var store kvstore.Store = dir
			if tc.store != nil {
				store = tc.store(store)
			}
			faulty := kvstoretest.NewFaulty(store)
			if tc.prep != nil {
				tc.prep(t, faulty)
			}
			creds := NewClientTransportCredentials(faulty, tc.opts...)
			defer creds.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := handshake(ctx, creds, addr)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			prefix := "kvcertverify: server " + addr + ": "
			if !strings.HasPrefix(err.Error(), prefix+tc.want) || !errors.Is(err, tc.is) {
				t.Fatalf("error %q\nwant prefix %q, matching %v", err, prefix+tc.want, tc.is)
			}
			// At most one read and one refetch.
			if n := faulty.Calls(kvstoretest.OpGet); n < 1 || n > 2 {
				t.Errorf("%d Gets", n)
			}
		})
	}
}

func TestClientOptionErrors(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "")
	for _, tc := range []struct {
		name string
		opts []ClientOption
		want string
	}{
		{"ttl", []ClientOption{WithCacheTTL(0)}, "kvcertverify: WithCacheTTL: 0s is not positive"},
		{"negative ttl", []ClientOption{WithNegativeTTL(-1)}, "kvcertverify: WithNegativeTTL: -1ns is negative"},
		{"size", []ClientOption{WithMaxBundleSize(0)}, "kvcertverify: WithMaxBundleSize: 0 is not positive"},
		{"certs", []ClientOption{WithMaxBundleCerts(-1)}, "kvcertverify: WithMaxBundleCerts: -1 is not positive"},
		{"logger", []ClientOption{WithLogger(nil)}, "kvcertverify: WithLogger: nil logger"},
		{"handshake timeout", []ClientOption{WithHandshakeTimeout(0)}, "kvcertverify: WithHandshakeTimeout: 0s is not positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := NewClientTransportCredentials(store, tc.opts...)
			if err := creds.Err(); err == nil || err.Error() != tc.want {
				t.Fatalf("Err() = %v, want %q", err, tc.want)
			}
			if _, err := handshake(context.Background(), creds, ts.addr); err == nil || err.Error() != tc.want {
				t.Fatalf("handshake: %v, want %q", err, tc.want)
			}
		})
	}
	if err := NewClientTransportCredentials(nil).Err(); err == nil || err.Error() != "kvcertverify: nil store" {
		t.Fatalf("nil store: %v", err)
	}
}

// TestRefetchOnMismatch: a client that cached the bundle before the server
// rotated refetches once and connects; an impostor causes at most one
// refetch per refetch interval.
func TestRefetchOnMismatch(t *testing.T) {
	mem := kvstore.NewMemory()
	faulty := kvstoretest.NewFaulty(mem)
	ts := startServer(t, mem, "")
	key := "certs/" + ts.addr
	clock := newFakeClock()
	clock.now = time.Now()
	creds := NewClientTransportCredentials(faulty, WithTime(clock.Now))
	// Cache a bundle that lacks the server's certificate.
	stale := EncodeBundle(selfSigned(t, leafFor(ts.addr, clock.now.Add(-time.Hour), clock.now.Add(time.Hour))))
	good, _ := mem.Get(context.Background(), key)
	mem.Put(context.Background(), key, stale)
	if _, err := handshake(context.Background(), creds, ts.addr); !errors.Is(err, ErrMismatch) {
		t.Fatalf("stale bundle fetched in this handshake: %v", err)
	}
	if n := faulty.Calls(kvstoretest.OpGet); n != 1 {
		t.Fatalf("%d Gets: a bundle fetched in this handshake is not refetched", n)
	}
	mem.Put(context.Background(), key, good) // the server "rotated"
	if _, err := handshake(context.Background(), creds, ts.addr); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := faulty.Calls(kvstoretest.OpGet); n != 2 {
		t.Fatalf("%d Gets, want one refetch", n)
	}
	// An impostor (or a stale bundle): each mismatch may force a refetch
	// only once per refetch interval.
	mem.Put(context.Background(), key, stale)
	faulty.ResetCalls()
	creds2 := NewClientTransportCredentials(faulty, WithTime(clock.Now), WithCacheTTL(time.Hour))
	for i := range 5 {
		if _, err := handshake(context.Background(), creds2, ts.addr); !errors.Is(err, ErrMismatch) {
			t.Fatalf("handshake %d: %v", i, err)
		}
	}
	// The first read, then one refetch.
	if n := faulty.Calls(kvstoretest.OpGet); n != 2 {
		t.Fatalf("%d Gets, want 2", n)
	}
	clock.Advance(DefaultRefetchInterval)
	if _, err := handshake(context.Background(), creds2, ts.addr); !errors.Is(err, ErrMismatch) {
		t.Fatal(err)
	}
	if n := faulty.Calls(kvstoretest.OpGet); n != 3 {
		t.Fatalf("%d Gets, want 3", n)
	}
}

// TestSlowServer: a peer that accepts and never answers cannot hold a
// handshake past the handshake timeout.
func TestSlowServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	creds := NewClientTransportCredentials(kvstore.NewMemory(), WithHandshakeTimeout(100*time.Millisecond))
	_, err = handshake(context.Background(), creds, lis.Addr().String())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "kvcertverify: server "+lis.Addr().String()+": tls handshake: ") {
		t.Fatalf("error %v, want the handshake deadline", err)
	}
	if c := <-accepted; c != nil {
		c.Close()
	}
}

// TestOutageRefetchKeepsWarmCache: during a store outage, a certificate
// that forces a refetch (an impostor's, say) must not throw away the cached
// bundle: the genuine server still connects until the cache TTL ends.
func TestOutageRefetchKeepsWarmCache(t *testing.T) {
	mem := kvstore.NewMemory()
	faulty := kvstoretest.NewFaulty(mem)
	ts := startServer(t, mem, "")
	impostor := startServer(t, kvstore.NewMemory(), "")
	creds := NewClientTransportCredentials(faulty, WithRefetchInterval(0))
	defer creds.Close()
	if _, err := handshake(context.Background(), creds, ts.addr); err != nil {
		t.Fatal(err)
	}
	faulty.Fail(kvstoretest.OpGet, errors.New("503 slow down"))
	// An on-path attacker answers a connection to ts.addr with its own
	// certificate.
	raw, err := net.Dial("tcp", impostor.addr)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(ts.addr)
	conn := tls.Client(raw, creds.tlsConfig(context.Background(), ts.addr, host))
	err = conn.Handshake()
	conn.Close()
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("impostor: %v, want a mismatch", err)
	}
	if n := faulty.Calls(kvstoretest.OpGet); n != 2 {
		t.Fatalf("%d Gets, want the first read and one refetch", n)
	}
	if _, err := handshake(context.Background(), creds, ts.addr); err != nil {
		t.Fatalf("genuine server after a failed refetch: %v", err)
	}
}
