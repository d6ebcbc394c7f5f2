package kvcertverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/kvstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a clock tests move by hand; its timers fire when it passes
// their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock by d and fires the timers it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// withTestHooks makes the server's timers use clock and report its events.
func withTestHooks(clock *fakeClock, events chan<- string) ServerOption {
	return serverOption(func(c *serverConfig) {
		c.now = clock.Now
		c.after = clock.After
		c.event = func(e string) { events <- e }
	})
}

// withEvents reports the server's events on a channel.
func withEvents(events chan<- string) ServerOption {
	return serverOption(func(c *serverConfig) {
		c.event = func(e string) {
			select {
			case events <- e:
			default:
			}
		}
	})
}

// testServer is a real grpc-go server with a health service on loopback
// TCP, whose credentials publish for the address it listens on.
type testServer struct {
	addr  string
	creds *ServerCredentials
	srv   *grpc.Server
	done  chan struct{}
}

// startServer listens on 127.0.0.1:0 and serves with credentials for
// advertised (the listener's own address when empty) in store.
func startServer(t testing.TB, store kvstore.Store, advertised string, opts ...ServerOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if advertised == "" {
		advertised = lis.Addr().String()
	}
	creds, err := NewServerTransportCredentials(context.Background(), store, advertised, opts...)
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	ts := &testServer{addr: lis.Addr().String(), creds: creds, srv: grpc.NewServer(grpc.Creds(creds)), done: make(chan struct{})}
	healthpb.RegisterHealthServer(ts.srv, health.NewServer())
	go func() {
		defer close(ts.done)
		ts.srv.Serve(lis)
	}()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.srv.Stop()
	<-ts.done
	ts.creds.Close()
}

// selfSigned makes a self-signed certificate from tmpl (serial, key and
// self-signature filled in).
func selfSigned(t testing.TB, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	if tmpl.Subject.CommonName == "" {
		tmpl.Subject = pkix.Name{CommonName: "test"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafFor returns a template of a server certificate for the host of addr.
func leafFor(addr string, notBefore, notAfter time.Time) *x509.Certificate {
	host, _, _ := net.SplitHostPort(addr)
	tmpl := &x509.Certificate{
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{host}
	}
	return tmpl
}

// get reads key from store, failing the test on error.
func get(t testing.TB, store kvstore.Store, key string) []*x509.Certificate {
	t.Helper()
	v, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseBundle(v, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

type tlsHello struct{}

func (tlsHello) info() *tls.ClientHelloInfo { return &tls.ClientHelloInfo{} }

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func registerHealth(s *grpc.Server) { healthpb.RegisterHealthServer(s, health.NewServer()) }
