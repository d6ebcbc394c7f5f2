package handshake_test

import (
	"context"
	"errors"
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

// nestedInfo is another wrapper's AuthInfo around ours.
type nestedInfo struct{ inner credentials.AuthInfo }

func (n nestedInfo) AuthType() string            { return "nested" }
func (n nestedInfo) Inner() credentials.AuthInfo { return n.inner }
func (n nestedInfo) GetCommonAuthInfo() credentials.CommonAuthInfo {
	return credentials.CommonAuthInfo{}
}

// connectTLS makes one real wrapped TLS connection and returns the client's
// and the server's AuthInfo.
func connectTLS(t *testing.T, opts ...grpc.CallOption) (client, server *handshake.AuthInfo, err error) {
	t.Helper()
	seen := make(chan *handshake.AuthInfo, 1)
	funcs := handshake.Funcs{
		Server: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) { return "s", nil },
		Client: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) { return "c", nil },
	}
	srv := startServer(t, handshake.Wrap(tlsServer(t), funcs), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ai, _ := handshake.FromContext(ctx)
			seen <- ai
			return h(ctx, req)
		}))
	hc := newClient(t, srv.addr, handshake.Wrap(tlsClient(t), funcs))
	var p peer.Peer
	if _, err := hc.Check(testContext(t), &healthpb.HealthCheckRequest{}, append(opts, grpc.Peer(&p))...); err != nil {
		return nil, nil, err
	}
	client, ok := handshake.FromPeer(&p)
	if !ok {
		t.Fatalf("client peer AuthInfo is %T", p.AuthInfo)
	}
	return client, <-seen, nil
}

func TestAuthInfoTLS(t *testing.T) {
	client, server, err := connectTLS(t)
	if err != nil {
		t.Fatal(err)
	}
	if client.Value() != "c" || server.Value() != "s" {
		t.Fatalf("values = %v, %v", client.Value(), server.Value())
	}
	// The client's inner TLSInfo holds the server's verified chain.
	ti, ok := handshake.FindTLSInfo(client)
	if !ok || len(ti.State.VerifiedChains) == 0 {
		t.Fatalf("FindTLSInfo(client) = %v, %v; want verified chains", ti.State.VerifiedChains, ok)
	}
	// Found beneath another wrapper too, and FromPeer digs as well.
	if _, ok := handshake.FindTLSInfo(nestedInfo{client}); !ok {
		t.Fatal("FindTLSInfo missed the TLSInfo beneath two wrappers")
	}
	if got, ok := handshake.FromPeer(&peer.Peer{AuthInfo: nestedInfo{client}}); !ok || got != client {
		t.Fatal("FromPeer missed the AuthInfo beneath another wrapper")
	}
	// AuthorityValidator delegates to TLSInfo: the leaf has only 127.0.0.1.
	if err := client.ValidateAuthority("127.0.0.1:443"); err != nil {
		t.Fatalf("ValidateAuthority(127.0.0.1) = %v", err)
	}
	if err := client.ValidateAuthority("evil.example.com"); err == nil {
		t.Fatal("ValidateAuthority(evil.example.com) passed")
	}
	if v, ok := client.GetSecurityValue().(*credentials.TLSChannelzSecurityValue); !ok || len(v.RemoteCertificate) == 0 {
		t.Fatalf("GetSecurityValue() = %T, want TLS channelz value with the remote cert", client.GetSecurityValue())
	}
}

// TestCallAuthority checks the AuthorityValidator end to end: grpc-go asks
// the connection's AuthInfo before overriding :authority.
func TestCallAuthority(t *testing.T) {
	if _, _, err := connectTLS(t, grpc.CallAuthority("127.0.0.1")); err != nil {
		t.Fatalf("Check(CallAuthority(127.0.0.1)) = %v", err)
	}
	_, _, err := connectTLS(t, grpc.CallAuthority("evil.example.com"))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "evil.example.com") {
		t.Fatalf("Check(CallAuthority(evil.example.com)) = %v, want Unavailable", err)
	}
}

func TestAuthInfoNoTLS(t *testing.T) {
	if _, ok := handshake.FindTLSInfo(nil); ok {
		t.Fatal("FindTLSInfo(nil) found something")
	}
	if _, ok := handshake.FindTLSInfo(nestedInfo{nil}); ok {
		t.Fatal("FindTLSInfo(nested nil) found something")
	}
	if _, ok := handshake.FromPeer(nil); ok {
		t.Fatal("FromPeer(nil) found something")
	}
	if _, ok := handshake.FromPeer(&peer.Peer{}); ok {
		t.Fatal("FromPeer(empty peer) found something")
	}
	if _, ok := handshake.FromContext(context.Background()); ok {
		t.Fatal("FromContext(no peer) found something")
	}
}

func TestInfoCloneOverrideServerName(t *testing.T) {
	inner := tlsClient(t)
	creds := handshake.Wrap(inner, handshake.Funcs{})
	if got, want := creds.Info(), inner.Info(); got != want {
		t.Fatalf("Info() = %+v, want the inner's %+v (grpc-go derives :scheme from it)", got, want)
	}
	clone := creds.Clone()
	//lint:ignore SA1019 the deprecated method must keep working.
	if err := clone.OverrideServerName("localhost"); err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the deprecated field shows the override.
	if got := clone.Info().ServerName; got != "localhost" {
		t.Fatalf("clone Info().ServerName = %q after OverrideServerName, want localhost", got)
	}
	//lint:ignore SA1019 the deprecated field shows the override.
	if got := creds.Info().ServerName; got != "" {
		t.Fatalf("original Info().ServerName = %q: the clone shares state", got)
	}
}

// TestCloneKeepsEverything checks a clone of server credentials keeps the
// functions, the timeout and the message limit.
func TestCloneKeepsEverything(t *testing.T) {
	server := func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
		msg, err := m.Recv()
		if err != nil {
			return nil, err
		}
		return string(msg), nil
	}
	orig := handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{Server: server},
		handshake.WithTimeout(shortTimeout), handshake.WithMaxMessageSize(8))
	clone := orig.Clone()

	t.Run("funcs", func(t *testing.T) {
		srv := startServer(t, clone)
		client := newClient(t, srv.addr, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{
			Client: func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
				return nil, m.Send([]byte("12345678"))
			},
		}))
		if _, err := client.Check(testContext(t), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		if res := srv.rec.next(t); res.err != nil || res.ai.(*handshake.AuthInfo).Value() != "12345678" {
			t.Fatalf("clone's server handshake = %v, %v", res.ai, res.err)
		}
	})
	t.Run("max message size", func(t *testing.T) {
		srv := startServer(t, clone)
		c := dialRaw(t, srv.addr)
		write(t, c, []byte{1, 0, 0, 0, 9})
		if res := srv.rec.next(t); res.err == nil || !strings.Contains(res.err.Error(), "announces 9 bytes, over the limit of 8") {
			t.Fatalf("server error = %v, want the clone's 8-byte limit", res.err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv := startServer(t, clone)
		dialRaw(t, srv.addr)
		// The clone must keep 300ms, not fall back to the 10s default: wait
		// well past the former, well short of the latter.
		select {
		case res := <-srv.rec.results:
			if !errors.Is(res.err, os.ErrDeadlineExceeded) {
				t.Fatalf("server error = %v, want a timeout", res.err)
			}
		case <-time.After(handshake.DefaultTimeout / 2):
			t.Fatal("the clone did not keep WithTimeout")
		}
	})
}

// TestMaxConcurrentHandshakes holds the only slot with a server function and
// checks that the next connection is dropped, not queued forever.
func TestMaxConcurrentHandshakes(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	creds := handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{
		Server: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) {
			entered <- struct{}{}
			<-release // deliberately ignores ctx to hold the slot
			return nil, nil
		},
	}, handshake.WithTimeout(shortTimeout), handshake.WithMaxConcurrentHandshakes(1))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accept := func() net.Conn {
		dialRaw(t, lis.Addr().String()) // a client that never speaks
		s, err := lis.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	first := make(chan error, 1)
	go func() {
		_, _, err := creds.ServerHandshake(accept())
		first <- err
	}()
	<-entered
	_, _, err = creds.ServerHandshake(accept())
	if err == nil || err.Error() != "handshake: too many concurrent handshakes: no slot freed within the timeout" {
		t.Fatalf("second ServerHandshake() error = %v", err)
	}
	close(release)
	if err := <-first; err == nil {
		t.Fatal("first ServerHandshake succeeded past its deadline")
	}

	// The slot is free again.
	done := make(chan error, 1)
	go func() {
		_, _, err := creds.ServerHandshake(accept())
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("the slot was not released")
	}
	<-done
}

func TestAuthorizationInterceptors(t *testing.T) {
	allow := func(_ context.Context, ai credentials.AuthInfo) error {
		h, ok := ai.(*handshake.AuthInfo)
		if !ok {
			return errors.New("not a handshake connection")
		}
		if h.Value() != "account 1" {
			return errors.New("account not allowed")
		}
		return nil
	}
	for _, tt := range []struct {
		name    string
		server  credentials.TransportCredentials
		client  credentials.TransportCredentials
		wantErr string
	}{
		{
			name: "allowed",
			server: handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{Server: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) {
				return "account 1", nil
			}}),
			client: handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{}),
		},
		{
			name: "denied",
			server: handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{Server: func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) {
				return "account 2", nil
			}}),
			client:  handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{}),
			wantErr: "handshake: permission denied: account not allowed",
		},
		{
			name:    "plain connection",
			server:  insecure.NewCredentials(),
			client:  insecure.NewCredentials(),
			wantErr: "handshake: permission denied: not a handshake connection",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.server,
				grpc.UnaryInterceptor(handshake.UnaryServerInterceptor(allow)),
				grpc.StreamInterceptor(handshake.StreamServerInterceptor(allow)))
			hc := newClient(t, srv.addr, tt.client)
			ctx := testContext(t)

			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			checkDenied(t, "Check", err, tt.wantErr)

			stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			checkDenied(t, "Watch", err, tt.wantErr)
			if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Watch() = %v", resp)
			}
		})
	}
}

func checkDenied(t *testing.T, call string, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("%s() error = %v", call, err)
		}
		return
	}
	if s, _ := status.FromError(err); s.Code() != codes.PermissionDenied || s.Message() != want {
		t.Fatalf("%s() error = %v, want PermissionDenied %q", call, err, want)
	}
}

func TestInterceptorNilAuthorize(t *testing.T) {
	srv := startServer(t, insecure.NewCredentials(), grpc.UnaryInterceptor(handshake.UnaryServerInterceptor(nil)))
	_, err := newClient(t, srv.addr, insecure.NewCredentials()).Check(testContext(t), &healthpb.HealthCheckRequest{})
	checkDenied(t, "Check", err, "handshake: permission denied: no authorization function")
}
