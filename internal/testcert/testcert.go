// Package testcert mints TLS credentials for the module's tests: a CA made
// for the test binary and a server certificate for 127.0.0.1 signed by it.
// No user should import it.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// PKI is a CA and a server certificate for 127.0.0.1 that it signed.
type PKI struct {
	Roots  *x509.CertPool  // holds the CA
	Server tls.Certificate // for 127.0.0.1, valid for an hour either side of now
}

var (
	once sync.Once
	pki  PKI
	err  error
)

// Get returns the test binary's PKI, minting it on first use.
func Get() (PKI, error) {
	once.Do(func() { pki, err = mint() })
	return pki, err
}

// ServerCreds returns TLS 1.3 server credentials with Get's certificate.
func ServerCreds() (credentials.TransportCredentials, error) {
	p, err := Get()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS13}), nil
}

// ClientCreds returns TLS 1.3 client credentials that trust Get's CA.
func ClientCreds() (credentials.TransportCredentials, error) {
	p, err := Get()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{RootCAs: p.Roots, MinVersion: tls.VersionTLS13}), nil
}

func mint() (PKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PKI{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "grpcutil test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return PKI{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return PKI{}, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PKI{}, err
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
		return PKI{}, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return PKI{Roots: roots, Server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}, nil
}
