package kvcertverify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

// check makes one health RPC over a new channel to target and returns its
// error and the peer.
func check(t testing.TB, target string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*peer.Peer, error) {
	t.Helper()
	cc, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	return checkCC(cc)
}

func checkCC(cc *grpc.ClientConn) (*peer.Peer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var p peer.Peer
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	return &p, err
}

func TestHappyPath(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "")
	creds := NewClientTransportCredentials(store)
	defer creds.Close()
	p, err := check(t, ts.addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("AuthInfo is %T, want credentials.TLSInfo", p.AuthInfo)
	}
	if info.SecurityLevel != credentials.PrivacyAndIntegrity {
		t.Errorf("security level %v", info.SecurityLevel)
	}
	if len(info.State.PeerCertificates) != 1 || !bytes.Equal(info.State.PeerCertificates[0].Raw, ts.creds.Certificate().Raw) {
		t.Error("peer certificate is not the server's")
	}
	if info.State.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN %q", info.State.NegotiatedProtocol)
	}
	// grpc-go's own security-level check passes.
	if err := credentials.CheckSecurityLevel(info, credentials.PrivacyAndIntegrity); err != nil {
		t.Error(err)
	}
}

// TestResolverBackends dials a manual resolver's target: the channel
// authority is the service name, and each backend's certificates must be
// looked up by the backend's own address.
func TestResolverBackends(t *testing.T) {
	mem := kvstore.NewMemory()
	faulty := kvstoretest.NewFaulty(mem)
	var servers []*testServer
	var addrs []resolver.Address
	for range 3 {
		ts := startServer(t, mem, "")
		servers = append(servers, ts)
		addrs = append(addrs, resolver.Address{Addr: ts.addr})
	}
	r := manual.NewBuilderWithScheme("kvtest")
	r.InitialState(resolver.State{Addresses: addrs})
	creds := NewClientTransportCredentials(faulty)
	defer creds.Close()
	cc, err := grpc.NewClient("kvtest:///hello-service", grpc.WithResolvers(r), grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		p, err := checkCC(cc)
		if err != nil {
			t.Fatal(err)
		}
		seen[p.Addr.String()] = true
		info := p.AuthInfo.(credentials.TLSInfo)
		var ts *testServer
		for _, s := range servers {
			if s.addr == p.Addr.String() {
				ts = s
			}
		}
		if ts == nil || !bytes.Equal(info.State.PeerCertificates[0].Raw, ts.creds.Certificate().Raw) {
			t.Fatalf("peer %v presented another server's certificate", p.Addr)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("reached %d of 3 backends", len(seen))
	}
	if got := faulty.Calls(kvstoretest.OpGet); got != 3 {
		t.Errorf("%d Gets for 3 backends, want 3", got)
	}
	// A backend that published under another address is refused, by its
	// own address, although the authority is unchanged.
	rogue := startServer(t, mem, "127.0.0.1:1")
	r.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: rogue.addr}}})
	want := "kvcertverify: server " + rogue.addr + ": revoked: no certificate published for the address"
	for {
		_, err := checkCC(cc)
		if err != nil && strings.Contains(err.Error(), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("error %v, want it to contain %q", err, want)
		}
	}
}

// TestServerAddressAttribute: a resolver that hands over addresses other
// than the advertised one names the advertised one in an attribute.
func TestServerAddressAttribute(t *testing.T) {
	store := kvstore.NewMemory()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	// The server advertises a DNS name; clients reach it at 127.0.0.1.
	advertised := fmt.Sprintf("localhost:%d", port)
	ts := startServerOn(t, store, fmt.Sprintf("127.0.0.1:%d", port), advertised)
	r := manual.NewBuilderWithScheme("kvtest")
	r.InitialState(resolver.State{Addresses: []resolver.Address{WithServerAddress(resolver.Address{Addr: ts.addr}, advertised)}})
	creds := NewClientTransportCredentials(store)
	if _, err := check(t, "kvtest:///svc", creds, grpc.WithResolvers(r)); err != nil {
		t.Fatal(err)
	}
	// Without the attribute, 127.0.0.1:port has nothing published.
	if _, err := check(t, ts.addr, creds); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("without the attribute: %v", err)
	}
}

func startServerOn(t testing.TB, store kvstore.Store, listen, advertised string) *testServer {
	t.Helper()
	// startServer listens on a port of its own; here the port is chosen, so
	// build the server by hand.
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := NewServerTransportCredentials(context.Background(), store, advertised)
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	ts := &testServer{addr: lis.Addr().String(), creds: creds, srv: grpc.NewServer(grpc.Creds(creds)), done: make(chan struct{})}
	registerHealth(ts.srv)
	go func() {
		defer close(ts.done)
		ts.srv.Serve(lis)
	}()
	t.Cleanup(ts.stop)
	return ts
}

// handshake dials addr and runs creds' client handshake with authority
// "svc", as grpc-go would.
func handshake(ctx context.Context, creds *ClientCredentials, addr string) (credentials.AuthInfo, error) {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn, info, err := creds.ClientHandshake(ctx, "svc", raw)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return info, nil
}

func TestImpostor(t *testing.T) {
	store := kvstore.NewMemory()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	// The genuine server published for addr but is not listening; an
	// impostor with a key of its own (published elsewhere) listens there.
	genuine, err := NewServerTransportCredentials(context.Background(), store, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer genuine.Close()
	impostor := startServerOn(t, kvstore.NewMemory(), addr, addr)
	creds := NewClientTransportCredentials(store, WithRefetchInterval(0))
	_, err = handshake(context.Background(), creds, impostor.addr)
	var ve *Error
	if !errors.Is(err, ErrMismatch) || !errors.As(err, &ve) || ve.Addr != addr {
		t.Fatalf("error %v, want a mismatch for %s", err, addr)
	}
	want := fmt.Sprintf("kvcertverify: server %s: certificate mismatch: the server's certificate (serial %x) is not one of the 1 published", addr, impostor.creds.Certificate().SerialNumber)
	if err.Error() != want {
		t.Fatalf("error %q\nwant      %q", err, want)
	}
	// Through grpc-go, the RPC fails with the same reason.
	if _, err := check(t, addr, creds); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("RPC error %v", err)
	}
}

func TestRevocation(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "")
	clock := newFakeClock()
	clock.now = time.Now()
	creds := NewClientTransportCredentials(store, WithTime(clock.Now), WithCacheTTL(10*time.Second))
	if _, err := handshake(context.Background(), creds, ts.addr); err != nil {
		t.Fatal(err)
	}
	// The server's bundle is deleted (as Close does) while it keeps serving.
	if err := store.Delete(context.Background(), "certs/"+ts.addr); err != nil {
		t.Fatal(err)
	}
	clock.Advance(9 * time.Second) // within the TTL: still cached
	if _, err := handshake(context.Background(), creds, ts.addr); err != nil {
		t.Fatalf("within the cache TTL: %v", err)
	}
	clock.Advance(time.Second) // the TTL is over
	_, err := handshake(context.Background(), creds, ts.addr)
	want := fmt.Sprintf(`kvcertverify: server %s: revoked: no certificate published for the address (key "certs/%s")`, ts.addr, ts.addr)
	if !errors.Is(err, ErrRevoked) || err.Error() != want {
		t.Fatalf("error %v\nwant  %s", err, want)
	}
	// Close revokes: new clients are refused.
	ts.stop()
	if _, err := store.Get(context.Background(), "certs/"+ts.addr); !errors.Is(err, kvstore.ErrNotFound) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCloseRevoked(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "")
	creds := NewClientTransportCredentials(store, WithCacheTTL(50*time.Millisecond), WithCloseRevoked(20*time.Millisecond))
	defer creds.Close()
	cc, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := checkCC(cc); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(context.Background(), "certs/"+ts.addr); err != nil {
		t.Fatal(err)
	}
	// Eventually the existing connection is closed and no new one can be
	// made: RPCs fail with the revocation.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := checkCC(cc)
		if err != nil && strings.Contains(err.Error(), "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still connected: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // poll: the eventual cut-off is what is tested
	}
	creds.mu.Lock()
	n := len(creds.conns)
	creds.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d addresses still tracked", n)
	}
}

// TestRotationUnderLoad rotates the server's certificate twice while RPCs
// run on a long-lived channel and new channels keep handshaking: none
// fails.
func TestRotationUnderLoad(t *testing.T) {
	store := kvstore.NewMemory()
	events := make(chan string, 16)
	ts := startServer(t, store, "", WithLifetime(3*time.Second), WithRotateAt(0.34), WithPropagationDelay(200*time.Millisecond),
		WithBackdate(0), withEvents(events))
	// The default TTL: stale bundles stay cached across rotations. The
	// handshake timeout is also how close to its expiry a session may be
	// resumed. Rotations come every second here, so the refetch a mismatch
	// forces must be allowed more often than the default once a second
	// (under load the first mismatch after one rotation can come less than
	// a second before the next).
	creds := NewClientTransportCredentials(store, WithHandshakeTimeout(time.Second), WithRefetchInterval(50*time.Millisecond))
	defer creds.Close()
	first := ts.creds.Certificate()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	var rpcs, handshakes int
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}
	long, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := checkCC(long); err != nil {
				fail(err)
			}
			mu.Lock()
			rpcs++
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			// A fresh channel: a new handshake (possibly resumed).
			if _, err := check(t, ts.addr, creds); err != nil {
				fail(err)
			}
			// And a full handshake with a cold client session cache.
			if _, err := handshake(context.Background(), creds.Clone().(*ClientCredentials), ts.addr); err != nil {
				fail(err)
			}
			mu.Lock()
			handshakes += 2
			mu.Unlock()
		}
	}()
	switched := 0
	timeout := time.After(30 * time.Second)
	for switched < 2 {
		select {
		case e := <-events:
			if e == "switched" {
				switched++
			}
		case <-timeout:
			t.Error("fewer than 2 rotations in 30s")
			switched = 2
		}
	}
	cancel()
	wg.Wait()
	if bytes.Equal(ts.creds.Certificate().Raw, first.Raw) {
		t.Error("not rotated")
	}
	t.Logf("%d RPCs and %d handshakes across 2 rotations", rpcs, handshakes)
	if len(failures) > 0 {
		t.Fatalf("%d failures, the first: %v", len(failures), failures[0])
	}
}

func TestConcurrentHandshakesOneGet(t *testing.T) {
	mem := kvstore.NewMemory()
	ts := startServer(t, mem, "")
	faulty := kvstoretest.NewFaulty(mem)
	faulty.SetLatency(50 * time.Millisecond) // let them all pile up on the one read
	creds := NewClientTransportCredentials(faulty)
	defer creds.Close()
	const n = 1000
	errs := make(chan error, n)
	sem := make(chan struct{}, 200) // bound open sockets, not the overlap with the read
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := handshake(context.Background(), creds, ts.addr)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := faulty.Calls(kvstoretest.OpGet); got != 1 {
		t.Fatalf("%d Gets for %d handshakes, want 1", got, n)
	}
}

func TestStoreOutage(t *testing.T) {
	mem := kvstore.NewMemory()
	ts := startServer(t, mem, "")
	faulty := kvstoretest.NewFaulty(mem)
	warm := NewClientTransportCredentials(faulty)
	if _, err := check(t, ts.addr, warm); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("503 slow down")
	faulty.Fail(kvstoretest.OpGet, injected)
	if _, err := check(t, ts.addr, warm); err != nil {
		t.Fatalf("warm cache during an outage: %v", err)
	}
	cold := NewClientTransportCredentials(faulty)
	_, err := handshake(context.Background(), cold, ts.addr)
	want := fmt.Sprintf(`kvcertverify: server %s: read certificate bundle "certs/%s": kvstoretest: injected Get fault: 503 slow down`, ts.addr, ts.addr)
	if !errors.Is(err, injected) || err.Error() != want {
		t.Fatalf("cold cache: %v\nwant %s", err, want)
	}
	// A slow store: the handshake timeout bounds the wait.
	faulty.Heal()
	faulty.SetLatency(time.Hour)
	slow := NewClientTransportCredentials(faulty, WithHandshakeTimeout(100*time.Millisecond), WithStoreTimeout(200*time.Millisecond))
	defer slow.Close()
	if _, err := handshake(context.Background(), slow, ts.addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow store: %v", err)
	}
}

// TestClientClosed: once the client credentials are closed, handshakes fail
// even to a server whose bundle is still cached, as Close's doc says.
func TestClientClosed(t *testing.T) {
	store := kvstore.NewMemory()
	ts := startServer(t, store, "")
	creds := NewClientTransportCredentials(store, WithCacheTTL(time.Hour))
	if _, err := handshake(context.Background(), creds, ts.addr); err != nil {
		t.Fatal(err)
	}
	creds.Close()
	_, err := handshake(context.Background(), creds, ts.addr)
	want := "kvcertverify: server " + ts.addr + ": client credentials closed"
	if err == nil || err.Error() != want {
		t.Fatalf("handshake after Close: %v, want %q", err, want)
	}
	cfg, err := creds.TLSConfig(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if err := conn.Handshake(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("TLSConfig handshake after Close: %v, want %q", err, want)
	}
}
