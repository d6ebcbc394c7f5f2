package h2c

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bytesCodec carries raw bytes as gRPC messages, so the tests need no
// generated code.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("bytesCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("bytesCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (bytesCodec) Name() string { return "h2ctestbytes" }

// echoDesc is a tiny handwritten service:
//
//	Unary:        "x"       → "echo:x"
//	ServerStream: "n"       → "0", "1", ... "n-1"
//	Bidi:         each msg  → "echo:" + msg, until the client closes
//	Fail:         any       → status from the message text (for curl/h2load)
var echoDesc = grpc.ServiceDesc{
	ServiceName: "h2ctest.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			out := append([]byte("echo:"), in...)
			return &out, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "ServerStream",
		ServerStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			var in []byte
			if err := ss.RecvMsg(&in); err != nil {
				return err
			}
			n, err := strconv.Atoi(string(in))
			if err != nil {
				return err
			}
			for i := range n {
				out := []byte(strconv.Itoa(i))
				if err := ss.SendMsg(&out); err != nil {
					return err
				}
			}
			return nil
		},
	}, {
		StreamName:    "Bidi",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			for {
				var in []byte
				err := ss.RecvMsg(&in)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				out := append([]byte("echo:"), in...)
				if err := ss.SendMsg(&out); err != nil {
					return err
				}
			}
		},
	}},
}

func newGRPCServer(t testing.TB) *grpc.Server {
	t.Helper()
	gs := grpc.NewServer(grpc.ForceServerCodec(bytesCodec{}))
	gs.RegisterService(&echoDesc, struct{}{})
	t.Cleanup(gs.Stop)
	return gs
}

// startServer serves srv on a fresh loopback listener and closes it when the
// test ends, checking that Serve returned ErrServerClosed.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func newClient(t testing.TB, addr string, d Dialer) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithContextDialer(d.DialContext),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func unary(ctx context.Context, cc grpc.ClientConnInterface, msg string) (string, error) {
	in, out := []byte(msg), []byte(nil)
	if err := cc.Invoke(ctx, "/h2ctest.Echo/Unary", &in, &out); err != nil {
		return "", err
	}
	return string(out), nil
}

func serverStream(ctx context.Context, cc grpc.ClientConnInterface, n int) ([]string, error) {
	s, err := cc.NewStream(ctx, &echoDesc.Streams[0], "/h2ctest.Echo/ServerStream")
	if err != nil {
		return nil, err
	}
	in := []byte(strconv.Itoa(n))
	if err := s.SendMsg(&in); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	var got []string
	for {
		var out []byte
		err := s.RecvMsg(&out)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(out))
	}
}

func bidi(ctx context.Context, cc grpc.ClientConnInterface, msgs []string) ([]string, error) {
	s, err := cc.NewStream(ctx, &echoDesc.Streams[1], "/h2ctest.Echo/Bidi")
	if err != nil {
		return nil, err
	}
	var got []string
	for _, m := range msgs { // lock-step: one out, one back
		in := []byte(m)
		if err := s.SendMsg(&in); err != nil {
			return got, err
		}
		var out []byte
		if err := s.RecvMsg(&out); err != nil {
			return got, err
		}
		got = append(got, string(out))
	}
	if err := s.CloseSend(); err != nil {
		return got, err
	}
	var out []byte
	if err := s.RecvMsg(&out); !errors.Is(err, io.EOF) {
		return got, fmt.Errorf("after CloseSend: RecvMsg = %v, want io.EOF", err)
	}
	return got, nil
}

// grpcFrame returns msg with the gRPC length prefix, as curl and h2load send it.
func grpcFrame(msg string) []byte {
	b := []byte{0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}
	return append(b, msg...)
}

// serveHTTPServer serves hs (whose handler is srv) on a loopback listener
// and shuts both down when the test ends.
func serveHTTPServer(t testing.TB, hs *http.Server, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		<-errc
	})
	return ln.Addr().String()
}
