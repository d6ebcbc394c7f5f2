package handshake_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testTimeout bounds every wait in the tests; generous, since the machine is
// shared. Handshake timeouts under test are much shorter (shortTimeout).
const (
	testTimeout  = 20 * time.Second
	shortTimeout = 300 * time.Millisecond
)

// testPKI is a CA and a server leaf for 127.0.0.1, minted per test binary.
type testPKI struct {
	roots  *x509.CertPool
	server tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     testPKI
)

func getPKI(t testing.TB) testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		now := time.Now()
		caTmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "handshake test CA"},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		ca, err := x509.ParseCertificate(caDER)
		if err != nil {
			panic(err)
		}
		leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		leafTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(2),
			Subject:      pkix.Name{CommonName: "127.0.0.1"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		pki.roots = x509.NewCertPool()
		pki.roots.AddCert(ca)
		pki.server = tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
	})
	return pki
}

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
	return credentials.NewTLS(&tls.Config{RootCAs: getPKI(t).roots, MinVersion: tls.VersionTLS13})
}

func tlsServer(t testing.TB) credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{getPKI(t).server}, MinVersion: tls.VersionTLS13})
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
