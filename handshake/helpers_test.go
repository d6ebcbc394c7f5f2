package handshake_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/internal/testcert"
)

// testTimeout bounds every wait in the tests; generous, since the machine is
// shared. Handshake timeouts under test are much shorter (shortTimeout).
const (
	testTimeout  = 20 * time.Second
	shortTimeout = 300 * time.Millisecond
)

// innerCreds is one kind of inner credentials for the matrix.
type innerCreds struct {
	name     string
	authType string
	level    credentials.SecurityLevel
	client   func(testing.TB) credentials.TransportCredentials
	server   func(testing.TB) credentials.TransportCredentials
}

var inners = []innerCreds{
	{
		name:     "insecure",
		authType: "insecure",
		level:    credentials.NoSecurity,
		client:   func(testing.TB) credentials.TransportCredentials { return insecure.NewCredentials() },
		server:   func(testing.TB) credentials.TransportCredentials { return insecure.NewCredentials() },
	},
	{
		name:     "tls",
		authType: "tls",
		level:    credentials.PrivacyAndIntegrity,
		client:   tlsClient,
		server:   tlsServer,
	},
}

func tlsClient(t testing.TB) credentials.TransportCredentials {
	c, err := testcert.ClientCreds()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tlsServer(t testing.TB) credentials.TransportCredentials {
	c, err := testcert.ServerCreds()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// result is what one server handshake produced.
type result struct {
	ai  credentials.AuthInfo
	err error
}

// recorder wraps server credentials and reports every ServerHandshake's
// outcome, so tests see the server side of a failed handshake.
type recorder struct {
	credentials.TransportCredentials
	results chan result
}

func (r *recorder) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := r.TransportCredentials.ServerHandshake(c)
	select {
	case r.results <- result{ai, err}:
	default: // a test that stopped listening (client retries)
	}
	return conn, ai, err
}

// next returns the next server handshake outcome.
func (r *recorder) next(t testing.TB) result {
	t.Helper()
	select {
	case res := <-r.results:
		return res
	case <-time.After(testTimeout):
		t.Fatal("no server handshake finished in time")
		return result{}
	}
}

// server is a real grpc-go server on loopback with the health service.
type server struct {
	addr   string
	rec    *recorder
	health *health.Server
}

func startServer(t testing.TB, creds credentials.TransportCredentials, opts ...grpc.ServerOption) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TransportCredentials: creds, results: make(chan result, 64)}
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(rec)}, opts...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return &server{addr: lis.Addr().String(), rec: rec, health: hs}
}

func newClient(t testing.TB, addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dialRaw opens a plain TCP connection to addr, closed at cleanup.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
