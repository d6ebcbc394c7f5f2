// Package handshake wraps any gRPC TransportCredentials with a custom
// exchange that runs on the secured connection after the inner credentials'
// handshake and before gRPC uses the connection.
//
// A typical use is a client proving something about itself (an AWS Instance
// Identity Document, a token) inside a TLS channel whose server is already
// authenticated, with the server refusing clients it does not accept:
//
//	funcs := handshake.Funcs{
//		Client: func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
//			return nil, m.Send(proof)
//		},
//		Server: func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
//			msg, err := m.Recv()
//			if err != nil {
//				return nil, err
//			}
//			id, err := verify(msg)
//			if err != nil {
//				return nil, handshake.Reject("proof not accepted")
//			}
//			return id, nil // read back in handlers with handshake.FromContext
//		},
//	}
//	srv := grpc.NewServer(grpc.Creds(handshake.Wrap(serverTLS, funcs)))
//	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(handshake.Wrap(clientTLS, funcs)))
//
// A refused client's connection fails with "handshake: rejected by server:
// proof not accepted" (matching ErrRejected), not a bare EOF.
//
// # Protocol
//
// Messages travel in frames (a type byte, a 4-byte big-endian length, the
// payload). While the functions run, frames carry Messenger messages; then
// each side sends one final frame, accept or reject with a reason, and reads
// the peer's. Frames are read with exact-length reads, so nothing past the
// final frame is consumed and gRPC gets the inner credentials' own secured
// connection: after the handshake there is no cost per message.
//
// # Limits
//
// Every handshake, the inner one included, is bounded in time (WithTimeout,
// 10s by default; on the server through connection deadlines, since grpc-go
// passes no context there), every message in size (WithMaxMessageSize, 64 KiB
// by default; a larger announced length is refused before allocating), and
// the server runs at most WithMaxConcurrentHandshakes at once (100 by
// default). The connection is closed on any failure, as grpc-go requires.
//
// # Authorization
//
// UnaryServerInterceptor and StreamServerInterceptor run an AuthorizeFunc on
// each RPC's connection AuthInfo and answer codes.PermissionDenied when it
// fails.
package handshake
