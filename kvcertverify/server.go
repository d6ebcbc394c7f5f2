package kvcertverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/grpcutil/grpcutil/kvstore"
)

// ServerCredentials are gRPC server TransportCredentials with a key of
// their own: an ECDSA P-256 key made in memory and never written anywhere,
// and a self-signed certificate for the advertised address, published in
// the store for clients to pin. A goroutine renews the certificate before
// it expires; Close stops it and deletes the published bundle, which
// revokes the server.
//
// Create them with NewServerTransportCredentials. They are safe for
// concurrent use.
type ServerCredentials struct {
	store kvstore.Store
	addr  string // canonical advertised address
	host  string
	key   string // store key
	cfg   serverConfig
	info  credentials.ProtocolInfo

	tlsConfig *tls.Config

	serving atomic.Pointer[issued]

	bundle []*issued // published, newest first; only the loop touches it after New

	rotateReq chan chan error // Rotate asks the loop for a rotation now

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// maxPublished is the most certificates a server publishes: the one it
// serves, the one that replaced it and the one before. Rotate may be called
// any number of times within a lifetime; the bundle must stay well within
// what clients accept (DefaultMaxBundleCerts).
const maxPublished = 3

// issued is a certificate the server made, with its key.
type issued struct {
	cert     *tls.Certificate
	leaf     *x509.Certificate
	rotateAt time.Time
}

// NewServerTransportCredentials makes a key and a certificate for the
// server at addr ("host:port" as clients dial it: an IP address or a DNS
// name), publishes the certificate under the prefix (default
// "certs/<addr>") and starts renewing it. It returns only once the
// certificate is published, or with the store's error; ctx bounds that
// first Put.
//
// Call Close when the server stops: it revokes the certificate.
func NewServerTransportCredentials(ctx context.Context, store kvstore.Store, addr string, opts ...ServerOption) (*ServerCredentials, error) {
	if store == nil {
		return nil, errors.New("kvcertverify: nil store")
	}
	var cfg serverConfig
	cfg.defaults()
	cfg.lifetime = DefaultLifetime
	cfg.rotateAt = DefaultRotateAt
	cfg.propagationDelay = DefaultPropagationDelay
	cfg.backdate = DefaultBackdate
	cfg.after = time.After
	cfg.event = func(string) {}
	for _, o := range opts {
		o.applyServer(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	canon, host, err := canonicalAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("kvcertverify: %w", err)
	}
	key := cfg.prefix + canon
	if err := kvstore.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("kvcertverify: store key for %s: %w", canon, err)
	}
	s := &ServerCredentials{
		store: store,
		addr:  canon,
		host:  host,
		key:   key,
		cfg:   cfg,
		info:  credentials.ProtocolInfo{SecurityProtocol: "tls"},
	}
	first, err := s.issue()
	if err != nil {
		return nil, err
	}
	if err := s.publish(ctx, []*issued{first}); err != nil {
		return nil, err
	}
	s.bundle = []*issued{first}
	s.serving.Store(first)
	s.tlsConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2"},
		GetCertificate: s.GetCertificate,
		Time:           cfg.now,
	}
	s.rotateReq = make(chan chan error)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Address returns the canonical advertised address the certificate is
// published for.
func (s *ServerCredentials) Address() string { return s.addr }

// Certificate returns the certificate the server presents now.
func (s *ServerCredentials) Certificate() *x509.Certificate { return s.serving.Load().leaf }

// GetCertificate returns the certificate the server presents now. It fits
// tls.Config.GetCertificate.
func (s *ServerCredentials) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("kvcertverify: server %s: credentials closed", s.addr)
	}
	return s.serving.Load().cert, nil
}

// TLSConfig returns a new tls.Config that serves the rotating certificate,
// for a net/http server (http.Server.TLSConfig) or a tls.Listener. It offers
// HTTP/2 and HTTP/1.1 over ALPN.
func (s *ServerCredentials) TLSConfig() *tls.Config {
	c := s.tlsConfig.Clone()
	c.NextProtos = []string{"h2", "http/1.1"}
	return c
}

// ServerHandshake implements credentials.TransportCredentials. It bounds the
// handshake by the handshake timeout and closes rawConn on failure.
func (s *ServerCredentials) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.handshakeTimeout)
	defer cancel()
	conn := tls.Server(rawConn, s.tlsConfig)
	if err := conn.HandshakeContext(ctx); err != nil {
		rawConn.Close()
		return nil, nil, fmt.Errorf("kvcertverify: server %s: handshake with %v: %w", s.addr, rawConn.RemoteAddr(), err)
	}
	return conn, credentials.TLSInfo{
		State:          conn.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// ClientHandshake implements credentials.TransportCredentials; server
// credentials refuse it.
func (s *ServerCredentials) ClientHandshake(_ context.Context, _ string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	rawConn.Close()
	return nil, nil, errors.New("kvcertverify: server credentials used for a client handshake")
}

// Info implements credentials.TransportCredentials.
func (s *ServerCredentials) Info() credentials.ProtocolInfo { return s.info }

// Clone implements credentials.TransportCredentials. The clone shares the
// key, the certificate and the rotation of s; closing either closes both.
func (s *ServerCredentials) Clone() credentials.TransportCredentials { return s }

// OverrideServerName implements credentials.TransportCredentials.
//
// Deprecated: as in grpc-go, it has no effect.
func (s *ServerCredentials) OverrideServerName(string) error { return nil }

// Close stops the renewal and deletes the published bundle, so that clients
// refuse new connections to this server once their cache expires. The keys
// are dropped and new handshakes fail. Close returns the store's error, if
// the delete failed; calling it again returns the same.
func (s *ServerCredentials) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.storeTimeout)
		defer cancel()
		if err := s.store.Delete(ctx, s.key); err != nil {
			s.closeErr = fmt.Errorf("kvcertverify: server %s: revoke: %w", s.addr, err)
		}
	})
	return s.closeErr
}

// issue makes a new key and a self-signed certificate.
func (s *ServerCredentials) issue() (*issued, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kvcertverify: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("kvcertverify: generate serial: %w", err)
	}
	now := s.cfg.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.host},
		NotBefore:             now.Add(-s.cfg.backdate),
		NotAfter:              now.Add(s.cfg.lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	if ip, err := netip.ParseAddr(s.host); err == nil {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{s.host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("kvcertverify: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("kvcertverify: parse own certificate: %w", err)
	}
	return &issued{
		cert:     &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf},
		leaf:     leaf,
		rotateAt: now.Add(time.Duration(float64(s.cfg.lifetime) * s.cfg.rotateAt)),
	}, nil
}

func (s *ServerCredentials) publish(ctx context.Context, bundle []*issued) error {
	certs := make([]*x509.Certificate, len(bundle))
	for i, b := range bundle {
		certs[i] = b.leaf
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.storeTimeout)
	defer cancel()
	if err := s.store.Put(ctx, s.key, EncodeBundle(certs...)); err != nil {
		return fmt.Errorf("kvcertverify: server %s: publish certificate: %w", s.addr, err)
	}
	return nil
}

// run renews the certificate: at the rotation time of the one served, it
// publishes [next, current...] (at most maxPublished), waits the
// propagation delay, then serves next. It re-publishes without certificates
// that have expired.
func (s *ServerCredentials) run() {
	defer s.wg.Done()
	retry := time.Duration(0)
	for {
		cur := s.serving.Load()
		wake := cur.rotateAt
		for _, b := range s.bundle {
			if b != cur && b.leaf.NotAfter.Before(wake) {
				wake = b.leaf.NotAfter.Add(time.Second) // NotAfter is inclusive
			}
		}
		d := wake.Sub(s.cfg.now())
		if retry > 0 {
			d = retry // after a failure, back off
		}
		var forced chan error // a Rotate call waiting for its result
		if d > 0 {
			select {
			case <-s.ctx.Done():
				return
			case <-s.cfg.after(d):
			case forced = <-s.rotateReq:
			}
		}
		now := s.cfg.now()
		var err error
		if forced != nil || !now.Before(cur.rotateAt) {
			err = s.rotate(now)
		} else {
			err = s.prune(now)
		}
		if forced != nil {
			forced <- err
		}
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.cfg.logger.Printf("%v", err)
			retry = min(max(2*retry, time.Second), time.Minute)
			continue
		}
		retry = 0
	}
}

// unexpired returns the certificates of s.bundle valid at now.
func (s *ServerCredentials) unexpired(now time.Time) []*issued {
	var out []*issued
	for _, b := range s.bundle {
		if !now.After(b.leaf.NotAfter) {
			out = append(out, b)
		}
	}
	return out
}

// Rotate renews the certificate now, ahead of its schedule, as the loop
// does before expiry: it publishes [next, current...], waits the
// propagation delay and then serves next. It returns once next is served,
// or with the error that stopped it; if ctx ends first, Rotate returns
// ctx's error and the rotation goes on.
//
// The certificate it replaces stays published (so that clients with a
// cached bundle or a resumed session still connect) until it expires or
// two more rotations push it out: the server keeps at most three
// certificates published. Rotate therefore does not revoke a key that may
// have been exposed; Close does, at once.
func (s *ServerCredentials) Rotate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kvcertverify: rotate: %w", err)
	}
	done := make(chan error, 1)
	select {
	case s.rotateReq <- done:
	case <-s.ctx.Done():
		return errors.New("kvcertverify: rotate: credentials closed")
	case <-ctx.Done():
		return fmt.Errorf("kvcertverify: rotate: %w", ctx.Err())
	}
	select {
	case err := <-done:
		if err == nil && s.ctx.Err() != nil {
			return errors.New("kvcertverify: rotate: credentials closed")
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("kvcertverify: rotate: %w", ctx.Err())
	}
}

func (s *ServerCredentials) rotate(now time.Time) error {
	next, err := s.issue()
	if err != nil {
		return err
	}
	bundle := append([]*issued{next}, s.unexpired(now)...)
	if len(bundle) > maxPublished {
		bundle = bundle[:maxPublished] // newest first: drop the oldest
	}
	if err := s.publish(s.ctx, bundle); err != nil {
		return err
	}
	s.bundle = bundle
	if s.cfg.propagationDelay > 0 {
		propagated := s.cfg.after(s.cfg.propagationDelay)
		s.cfg.event("published")
		select {
		case <-s.ctx.Done():
			return nil
		case <-propagated:
		}
	} else {
		s.cfg.event("published")
	}
	s.serving.Store(next)
	s.cfg.event("switched")
	return nil
}

func (s *ServerCredentials) prune(now time.Time) error {
	bundle := s.unexpired(now)
	if len(bundle) == len(s.bundle) {
		return nil
	}
	if len(bundle) == 0 {
		// The served certificate expired (rotation kept failing): keep it
		// published, so the failure stays visible as expiry, not revocation.
		return nil
	}
	if err := s.publish(s.ctx, bundle); err != nil {
		return err
	}
	s.bundle = bundle
	s.cfg.event("pruned")
	return nil
}

var _ credentials.TransportCredentials = (*ServerCredentials)(nil)
