// Package h2c carries gRPC over cleartext HTTP/2 (h2c), reached either by an
// HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2) or by prior knowledge (RFC 9113
// §3.3), for a gRPC server behind something that forwards only HTTP/1.1, or
// on a port shared with plain HTTP, where that hop has no TLS.
//
// Server accepts connections itself, tells the HTTP/2 connection preface from
// HTTP/1.1 (bounded in size and time), answers a valid h2c upgrade with 101
// Switching Protocols and a malformed one with 400 Bad Request, and hands
// plain HTTP/1.1 to a fallback handler:
//
//	gs := grpc.NewServer()
//	// register services on gs
//	srv := &h2c.Server{HTTP2Handler: gs, NonUpgradeHandler: http.HandlerFunc(http.NotFound)}
//	go srv.Serve(ln)
//	defer srv.Close()
//
// Dialer performs the upgrade on the client side for grpc-go:
//
//	conn, err := grpc.NewClient(addr,
//		grpc.WithContextDialer(h2c.Dialer{}.DialContext),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// # Speed
//
// grpc.Server.ServeHTTP (the route golang.org/x/net/http2/h2c offers) runs a
// loopback unary RPC about half as fast as grpc-go's native transport. When
// HTTP2Handler is a *grpc.Server, Server hands prior-knowledge connections,
// and upgrades from Dialer, to the native transport through an internal
// net.Listener on which it calls the gRPC server's Serve. Dialer marks its
// upgrade request (OPTIONS, no body) with a header; Server echoes it on the
// 101 and does not answer the OPTIONS request on stream 1, so the client
// begins a fresh HTTP/2 connection with its preface, just as with prior
// knowledge. Foreign upgrades, which carry a real request (curl --http2
// sends its GET or POST), get their answer on stream 1 from
// golang.org/x/net/http2.Server.ServeConn and HTTP2Handler (for a
// *grpc.Server, its ServeHTTP method).
//
// Against a foreign h2c server (one that does not echo the marker), Dialer
// still works: the server answers the OPTIONS request on stream 1, and the
// connection Dialer returns shifts grpc-go's stream IDs by two in both
// directions so that grpc-go's first stream does not collide with it.
//
// # Security
//
// h2c is cleartext: use it only on a hop that is protected some other way
// (a private network, a TLS-terminating proxy in front). Every read before
// the switch is bounded: the preface sniff and each HTTP/1.1 request header by
// ReadHeaderTimeout and MaxHeaderBytes, the body of an upgrade request by
// MaxUpgradeBodyBytes and ReadHeaderTimeout, Dialer's exchange by its ctx,
// HandshakeTimeout and MaxResponseHeaderBytes. After the switch the HTTP/2
// server in charge (grpc-go's or x/net's) applies its own limits.
//
// golang.org/x/net/http2/h2c is deprecated and not used here.
package h2c
