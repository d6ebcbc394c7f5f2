package kvcertverify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

// handshakeServer accepts TLS connections with cfg, completes the
// handshake, writes one byte (so the client reads any session ticket) and
// closes.
func handshakeServer(b *testing.B, cfg *tls.Config) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					tc.Write([]byte{1})
				}
				tc.Close()
			}()
		}
	}()
	b.Cleanup(func() {
		lis.Close()
		wg.Wait()
	})
	return lis.Addr().String()
}

// BenchmarkHandshake compares a full (and a resumed) TLS handshake over
// loopback TCP by the pinning client with a warm cache against a plain TLS
// client that trusts the server's certificate through a pre-loaded root
// pool. Same server, same ECDSA P-256 certificate.
func BenchmarkHandshake(b *testing.B) {
	store := kvstore.NewMemory()
	sc, err := NewServerTransportCredentials(context.Background(), store, "127.0.0.1:1")
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	roots := x509.NewCertPool()
	roots.AddCert(sc.Certificate())
	for _, mode := range []struct {
		name    string
		tickets bool
	}{{"Full", false}, {"Resumed", true}} {
		scfg := sc.TLSConfig()
		scfg.SessionTicketsDisabled = !mode.tickets
		addr := handshakeServer(b, scfg)
		// Publish the server's certificate for the address it listens on.
		if err := store.Put(context.Background(), "certs/"+addr, EncodeBundle(sc.Certificate())); err != nil {
			b.Fatal(err)
		}
		var plainSessions tls.ClientSessionCache
		if mode.tickets {
			plainSessions = tls.NewLRUClientSessionCache(16)
		}
		plain := func(raw net.Conn) (*tls.Conn, error) {
			c := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", ClientSessionCache: plainSessions})
			return c, c.Handshake()
		}
		cc := NewClientTransportCredentials(store)
		pinned := func(raw net.Conn) (*tls.Conn, error) {
			c, _, err := cc.ClientHandshake(context.Background(), "svc", raw)
			if err != nil {
				return nil, err
			}
			return c.(*tls.Conn), nil
		}
		for _, client := range []struct {
			name string
			hs   func(net.Conn) (*tls.Conn, error)
		}{{"PlainTLS", plain}, {"Pinned", pinned}} {
			b.Run(mode.name+"/"+client.name, func(b *testing.B) {
				resumed := 0
				one := func() {
					raw, err := net.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					c, err := client.hs(raw)
					if err != nil {
						b.Fatal(err)
					}
					var buf [1]byte
					if _, err := c.Read(buf[:]); err != nil {
						b.Fatal(err)
					}
					if c.ConnectionState().DidResume {
						resumed++
					}
					c.Close()
				}
				one() // warm the cache and the session
				b.ReportAllocs()
				b.ResetTimer()
				resumed = 0
				for range b.N {
					one()
				}
				b.ReportMetric(float64(resumed)/float64(b.N), "resumed/op")
			})
		}
		cc.Close()
	}
}

// BenchmarkConcurrentHandshakesGets reports the store reads 1,000
// concurrent handshakes to one address cost, from a cold cache.
func BenchmarkConcurrentHandshakesGets(b *testing.B) {
	mem := kvstore.NewMemory()
	sc, err := NewServerTransportCredentials(context.Background(), mem, "127.0.0.1:1")
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	scfg := sc.TLSConfig()
	addr := handshakeServer(b, scfg)
	mem.Put(context.Background(), "certs/"+addr, EncodeBundle(sc.Certificate()))
	faulty := kvstoretest.NewFaulty(mem)
	const n = 1000
	var gets int64
	for range b.N {
		cc := NewClientTransportCredentials(faulty)
		faulty.ResetCalls()
		sem := make(chan struct{}, 200)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				raw, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				c, _, err := cc.ClientHandshake(context.Background(), "svc", raw)
				if err != nil {
					b.Error(err)
					return
				}
				c.Close()
			}()
		}
		wg.Wait()
		gets += faulty.Calls(kvstoretest.OpGet)
		cc.Close()
	}
	b.ReportMetric(float64(gets)/float64(b.N), "gets/1000handshakes")
}

// BenchmarkIssue measures making a key and a self-signed certificate.
func BenchmarkIssue(b *testing.B) {
	sc, err := NewServerTransportCredentials(context.Background(), kvstore.NewMemory(), "10.0.0.1:1")
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	b.ReportAllocs()
	for range b.N {
		if _, err := sc.issue(); err != nil {
			b.Fatal(err)
		}
	}
}
