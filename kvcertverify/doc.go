// Package kvcertverify secures gRPC with self-signed server certificates
// that servers publish in a key-value store and clients pin, so that no
// certificate authority and no long-lived or shared credential is needed.
//
// A server makes its own ECDSA P-256 key in memory (it is never written
// anywhere) and a self-signed certificate for the address it advertises,
// publishes the PEM bundle under "certs/<address>" before it serves, and
// renews it before it expires: it publishes [next, current], waits a
// propagation delay, then serves next, and drops a certificate from the
// bundle once it has expired. Close deletes the bundle, revoking the
// server.
//
//	creds, err := kvcertverify.NewServerTransportCredentials(ctx, store, "10.0.1.7:8443")
//	if err != nil {
//		return err
//	}
//	defer creds.Close()
//	s := grpc.NewServer(grpc.Creds(creds))
//
// The same certificate serves net/http through ServerCredentials.TLSConfig
// or ServerCredentials.GetCertificate.
//
// A client looks the bundle up by the address of the backend it dialed (the
// connection's remote address; the channel authority names the service
// when a resolver is in use, see WithServerAddress for resolvers whose
// addresses are not the advertised ones) and accepts the server only if its
// certificate is byte-identical to a published, unexpired one:
//
//	creds := kvcertverify.NewClientTransportCredentials(store)
//	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
//
// Bundles are cached per address (WithCacheTTL; failed lookups for
// WithNegativeTTL), and concurrent handshakes to one address share one store
// read. A certificate not in the cached bundle causes one refetch before
// the handshake fails. Once a bundle is deleted, new handshakes to that
// server fail within the cache TTL with an error matching ErrRevoked;
// WithCloseRevoked also closes existing connections. Verification runs in
// tls.Config.VerifyConnection, so resumed TLS sessions are checked too. The
// AuthInfo is a credentials.TLSInfo.
//
// # Security
//
// Trust rests on write access to the store: whoever can write
// "certs/<address>" can impersonate the server at that address, and whoever
// can delete it can revoke it. Limit writes to the prefix to the servers.
// Everything read from the store is untrusted: bundles are bounded in size
// (WithMaxBundleSize) and in number of certificates (WithMaxBundleCerts),
// parsed strictly, and every certificate must name the address's host, be
// self-signed and not be a CA; anything else fails the handshake closed
// with an error naming the address and the reason.
package kvcertverify
