package handshake_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/grpcutil/grpcutil/handshake"
)

// clientHello sends "hello" and returns what the server answered.
func clientHello(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
	if err := m.Send([]byte("hello")); err != nil {
		return nil, err
	}
	reply, err := m.Recv()
	if err != nil {
		return nil, err
	}
	return "client saw " + string(reply), nil
}

// serverOutcome is one way a ServerFunc ends.
type serverOutcome struct {
	name string
	fn   handshake.ServerFunc
	// want: "" for success, else a substring of the client's RPC error.
	clientErr string
	// check inspects the server's ServerHandshake error.
	serverErr func(t *testing.T, err error)
}

func recvHello(m handshake.Messenger) error {
	msg, err := m.Recv()
	if err != nil {
		return err
	}
	if string(msg) != "hello" {
		return handshake.Reject("unexpected greeting")
	}
	return nil
}

var outcomes = []serverOutcome{
	{
		name: "accept",
		fn: func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			if err := recvHello(m); err != nil {
				return nil, err
			}
			return "server value", m.Send([]byte("welcome"))
		},
	},
	{
		name: "reject with reason",
		fn: func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			if err := recvHello(m); err != nil {
				return nil, err
			}
			return nil, handshake.Reject("account 42 is not allowed")
		},
		clientErr: "handshake: rejected by server: account 42 is not allowed",
		serverErr: func(t *testing.T, err error) {
			if err == nil || err.Error() != "handshake: rejecting peer: account 42 is not allowed" {
				t.Errorf("server error = %v", err)
			}
		},
	},
	{
		name: "reject before reading",
		fn: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) {
			return nil, handshake.Reject("not now")
		},
		clientErr: "handshake: rejected by server: not now",
		serverErr: func(t *testing.T, err error) {
			if err == nil || err.Error() != "handshake: rejecting peer: not now" {
				t.Errorf("server error = %v", err)
			}
		},
	},
	{
		name: "function error",
		fn: func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			if err := recvHello(m); err != nil {
				return nil, err
			}
			return nil, errors.New("lookup in secret-table failed")
		},
		clientErr: "handshake: rejected by server: server handshake failed",
		serverErr: func(t *testing.T, err error) {
			if err == nil || err.Error() != "handshake: server function failed: lookup in secret-table failed" {
				t.Errorf("server error = %v", err)
			}
		},
	},
	{
		name: "timeout",
		fn: func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			if err := recvHello(m); err != nil {
				return nil, err
			}
			<-ctx.Done()
			return nil, ctx.Err()
		},
		clientErr: "handshake: rejected by server: handshake timed out",
		serverErr: func(t *testing.T, err error) {
			if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "handshake: timed out") {
				t.Errorf("server error = %v, want a timeout", err)
			}
		},
	},
}

// TestMatrix runs every outcome over every inner credentials through real
// gRPC servers and clients on loopback.
func TestMatrix(t *testing.T) {
	for _, in := range inners {
		for _, oc := range outcomes {
			t.Run(in.name+"/"+oc.name, func(t *testing.T) {
				seen := make(chan *handshake.AuthInfo, 1)
				capture := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					ai, ok := handshake.FromContext(ctx)
					if !ok {
						t.Error("FromContext found no AuthInfo in the handler")
					}
					seen <- ai
					return h(ctx, req)
				}
				srv := startServer(t,
					handshake.Wrap(in.server(t), handshake.Funcs{Server: oc.fn}, handshake.WithTimeout(shortTimeout)),
					grpc.UnaryInterceptor(capture))
				client := newClient(t, srv.addr, handshake.Wrap(in.client(t), handshake.Funcs{Client: clientHello}))

				var p peer.Peer
				_, err := client.Check(testContext(t), &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
				res := srv.rec.next(t)

				if oc.clientErr != "" {
					if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), oc.clientErr) {
						t.Fatalf("Check() error = %v, want Unavailable with %q", err, oc.clientErr)
					}
					if strings.Contains(err.Error(), "secret") {
						t.Fatalf("Check() error %q leaks the server's internal error", err)
					}
					oc.serverErr(t, res.err)
					return
				}
				if err != nil {
					t.Fatalf("Check() error = %v", err)
				}
				if res.err != nil {
					t.Fatalf("server handshake error = %v", res.err)
				}
				sai := <-seen
				checkAuthInfo(t, sai, in, "server value")
				cai, ok := handshake.FromPeer(&p)
				if !ok {
					t.Fatalf("FromPeer(client peer) found nothing in %T", p.AuthInfo)
				}
				checkAuthInfo(t, cai, in, "client saw welcome")
			})
		}
	}
}

func checkAuthInfo(t *testing.T, ai *handshake.AuthInfo, in innerCreds, value string) {
	t.Helper()
	if got := ai.Value(); got != value {
		t.Errorf("Value() = %v, want %q", got, value)
	}
	if got, want := ai.AuthType(), in.authType+"+handshake"; got != want {
		t.Errorf("AuthType() = %q, want %q", got, want)
	}
	if got := ai.Inner().AuthType(); got != in.authType {
		t.Errorf("Inner().AuthType() = %q, want %q", got, in.authType)
	}
	if ai.SecurityLevel != in.level {
		t.Errorf("SecurityLevel = %v, want %v", ai.SecurityLevel, in.level)
	}
	if err := credentials.CheckSecurityLevel(ai, in.level); err != nil {
		t.Errorf("CheckSecurityLevel(%v) = %v", in.level, err)
	}
	if in.level < credentials.PrivacyAndIntegrity {
		if err := credentials.CheckSecurityLevel(ai, credentials.PrivacyAndIntegrity); err == nil {
			t.Errorf("CheckSecurityLevel(PrivacyAndIntegrity) passed on %s", in.name)
		}
	}
	tlsInfo, ok := ai.TLSInfo()
	if ok != (in.name == "tls") {
		t.Fatalf("TLSInfo() ok = %v on %s", ok, in.name)
	}
	if ok && tlsInfo.State.Version != tls.VersionTLS13 {
		t.Errorf("TLSInfo().State.Version = %x", tlsInfo.State.Version)
	}
}

// TestClientRejects checks the other direction: the client refuses the
// server, and the server learns the client's reason.
func TestClientRejects(t *testing.T) {
	for _, in := range inners {
		t.Run(in.name, func(t *testing.T) {
			srv := startServer(t, handshake.Wrap(in.server(t), handshake.Funcs{}, handshake.WithTimeout(5*time.Second)))
			reject := func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) {
				return nil, handshake.Reject("server not trusted")
			}
			client := newClient(t, srv.addr, handshake.Wrap(in.client(t), handshake.Funcs{Client: reject}))
			_, err := client.Check(testContext(t), &healthpb.HealthCheckRequest{})
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "handshake: rejecting peer: server not trusted") {
				t.Fatalf("Check() error = %v", err)
			}
			res := srv.rec.next(t)
			if !errors.Is(res.err, handshake.ErrRejected) || res.err.Error() != "handshake: rejected by client: server not trusted" {
				t.Fatalf("server error = %v, want the client's rejection", res.err)
			}
		})
	}
}

// TestClientHandshakeErrRejected calls ClientHandshake directly against a
// real gRPC server, to see the error value grpc-go flattens into text.
func TestClientHandshakeErrRejected(t *testing.T) {
	srv := startServer(t, handshake.Wrap(tlsServer(t), handshake.Funcs{
		Server: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) {
			return nil, handshake.Reject("go away\x00now")
		},
	}))
	creds := handshake.Wrap(tlsClient(t), handshake.Funcs{})
	raw := dialRaw(t, srv.addr)
	conn, ai, err := creds.ClientHandshake(testContext(t), srv.addr, raw)
	if conn != nil || ai != nil {
		t.Fatal("ClientHandshake returned a conn or AuthInfo with an error")
	}
	if !errors.Is(err, handshake.ErrRejected) || err.Error() != "handshake: rejected by server: go away?now" {
		t.Fatalf("ClientHandshake() error = %v", err)
	}
	// The raw connection was closed: the contract grpc-go relies on.
	if _, err := raw.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("raw conn after failure: Write error = %v, want net.ErrClosed", err)
	}
	if res := srv.rec.next(t); res.err == nil {
		t.Fatal("server handshake succeeded")
	}
}

// TestClientHandshakeContext checks that the client honors the context
// grpc-go passes: cancelling it ends an exchange stuck on a silent server.
func TestClientHandshakeContext(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := startServer(t, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{
		Server: func(ctx context.Context, _ handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("released")
		},
	}, handshake.WithTimeout(testTimeout)))
	defer close(release)

	creds := handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{})
	ctx, cancel := context.WithCancel(testContext(t))
	raw := dialRaw(t, srv.addr)
	errc := make(chan error, 1)
	go func() {
		_, _, err := creds.ClientHandshake(ctx, srv.addr, raw)
		errc <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Fatalf("ClientHandshake() error = %v, want it to end on cancellation", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("ClientHandshake did not return after its context was cancelled")
	}
}

// TestClientTimeout checks the client's own WithTimeout.
func TestClientTimeout(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	creds := handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{}, handshake.WithTimeout(shortTimeout))
	raw := dialRaw(t, lis.Addr().String())
	_, _, err = creds.ClientHandshake(testContext(t), "x", raw) // a server that never speaks
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ClientHandshake() error = %v, want a deadline error", err)
	}
	if c := <-accepted; c != nil {
		c.Close()
	}
}

// TestUnwrappedPeers checks mixing wrapped and plain credentials fails
// cleanly on both sides.
func TestUnwrappedPeers(t *testing.T) {
	t.Run("plain client, wrapped server", func(t *testing.T) {
		srv := startServer(t, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{}))
		client := newClient(t, srv.addr, insecure.NewCredentials())
		if _, err := client.Check(testContext(t), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("Check() error = %v, want Unavailable", err)
		}
		res := srv.rec.next(t)
		if res.err == nil || res.err.Error() != "handshake: unknown frame type 0x50 (peer does not speak this protocol)" {
			t.Fatalf("server error = %v, want the HTTP/2 preface refused", res.err)
		}
	})
	t.Run("wrapped client, plain server", func(t *testing.T) {
		srv := startServer(t, insecure.NewCredentials())
		client := newClient(t, srv.addr, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{}, handshake.WithTimeout(5*time.Second)))
		_, err := client.Check(testContext(t), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "handshake: ") {
			t.Fatalf("Check() error = %v, want Unavailable from the handshake", err)
		}
	})
}

// readRawFrame reads one frame as a peer would, for raw TCP clients.
func readRawFrame(t *testing.T, c net.Conn) (byte, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading the server's frame: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > 1024 {
		t.Fatalf("server frame announces %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf("reading the server's frame: %v", err)
	}
	return hdr[0], string(p)
}

// expectClosed checks that the server closed c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	if n, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("after %d bytes: %v, want the server to close the connection", n, err)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// TestHostileClients runs raw TCP clients that misbehave against a real gRPC
// server with a wrapped insecure inner (so the frames are visible).
func TestHostileClients(t *testing.T) {
	echo := func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
		msg, err := m.Recv()
		if err != nil {
			return nil, err
		}
		return nil, m.Send(msg)
	}
	const (
		reject = 0x03
	)
	tests := []struct {
		name string
		// client misbehaves on c; it may return a channel closed when done.
		client     func(t *testing.T, c net.Conn)
		serverErr  func(err error) bool
		wantReason string // "" when no reject frame is expected
	}{
		{
			name:       "never speaks",
			client:     func(*testing.T, net.Conn) {},
			serverErr:  func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
			wantReason: "handshake timed out",
		},
		{
			name: "one byte at a time",
			client: func(t *testing.T, c net.Conn) {
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					frame := []byte{1, 0, 0, 0, 20, 'h', 'e', 'l', 'l', 'o'}
					tick := time.NewTicker(shortTimeout / 10)
					defer tick.Stop()
					for _, b := range frame {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						if _, err := c.Write([]byte{b}); err != nil {
							return
						}
					}
				}()
				t.Cleanup(func() { close(stop); <-done })
			},
			serverErr:  func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
			wantReason: "handshake timed out",
		},
		{
			name:   "announces 4 GiB",
			client: func(t *testing.T, c net.Conn) { write(t, c, []byte{1, 0xff, 0xff, 0xff, 0xff}) },
			serverErr: func(err error) bool {
				return err != nil && err.Error() == "handshake: frame of type 0x01 announces 4294967295 bytes, over the limit of 65536"
			},
			wantReason: "protocol error",
		},
		{
			name:   "garbage",
			client: func(t *testing.T, c net.Conn) { write(t, c, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) },
			serverErr: func(err error) bool {
				return err != nil && err.Error() == "handshake: unknown frame type 0x47 (peer does not speak this protocol)"
			},
			wantReason: "protocol error",
		},
		{
			name: "early close in the header",
			client: func(t *testing.T, c net.Conn) {
				write(t, c, []byte{1, 0, 0})
				_ = c.(*net.TCPConn).CloseWrite()
			},
			serverErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name: "early close in the payload",
			client: func(t *testing.T, c net.Conn) {
				write(t, c, []byte{1, 0, 0, 0, 9, 'h', 'i'})
				_ = c.(*net.TCPConn).CloseWrite()
			},
			serverErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name: "close instead of the final frame",
			client: func(t *testing.T, c net.Conn) {
				write(t, c, []byte{1, 0, 0, 0, 2, 'h', 'i'})
				_ = c.(*net.TCPConn).CloseWrite()
			},
			serverErr: func(err error) bool { return errors.Is(err, io.EOF) },
		},
		{
			name: "extra message after the exchange",
			client: func(t *testing.T, c net.Conn) {
				write(t, c, []byte{1, 0, 0, 0, 2, 'h', 'i', 1, 0, 0, 0, 1, 'x'})
			},
			serverErr: func(err error) bool {
				return err != nil && err.Error() == "handshake: client sent a message the local function did not read"
			},
		},
		{
			name: "accepts before sending",
			client: func(t *testing.T, c net.Conn) {
				write(t, c, []byte{2, 0, 0, 0, 0})
			},
			serverErr: func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "peer ended the exchange")
			},
			wantReason: "protocol error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{Server: echo}, handshake.WithTimeout(shortTimeout)))
			c := dialRaw(t, srv.addr)
			tt.client(t, c)
			res := srv.rec.next(t)
			if !tt.serverErr(res.err) {
				t.Fatalf("server error = %v", res.err)
			}
			if tt.wantReason != "" {
				typ, reason := readRawFrame(t, c)
				if typ != reject || reason != tt.wantReason {
					t.Fatalf("server sent frame %#x %q, want a reject %q", typ, reason, tt.wantReason)
				}
			}
			expectClosed(t, c)
		})
	}
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestHostileTLSClient checks that the inner handshake is bounded too: a TCP
// client that never starts TLS is dropped at the timeout.
func TestHostileTLSClient(t *testing.T) {
	srv := startServer(t, handshake.Wrap(tlsServer(t), handshake.Funcs{}, handshake.WithTimeout(shortTimeout)))
	c := dialRaw(t, srv.addr)
	res := srv.rec.next(t)
	if !errors.Is(res.err, os.ErrDeadlineExceeded) || !strings.HasPrefix(res.err.Error(), "handshake: inner tls handshake: ") {
		t.Fatalf("server error = %v, want the inner handshake timed out", res.err)
	}
	expectClosed(t, c)
}

// TestStalledPrefaceAfterHandshake checks that a client that completes the
// handshake and then never sends gRPC's preface is still dropped: the server
// leaves grpc-go a bounded window, not an endless read.
func TestStalledPrefaceAfterHandshake(t *testing.T) {
	srv := startServer(t, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{}, handshake.WithTimeout(shortTimeout)))
	c := dialRaw(t, srv.addr)
	write(t, c, []byte{2, 0, 0, 0, 0}) // accept
	if typ, reason := readRawFrame(t, c); typ != 0x02 || reason != "" {
		t.Fatalf("server sent %#x %q, want accept", typ, reason)
	}
	if res := srv.rec.next(t); res.err != nil {
		t.Fatalf("server handshake error = %v", res.err)
	}
	expectClosed(t, c) // within testTimeout, far below grpc-go's own 120s
}
