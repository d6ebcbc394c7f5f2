package h2c

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// checkRPCs runs unary, server-streaming and bidi-streaming calls through d,
// then 100 concurrent calls of all three kinds.
func checkRPCs(t *testing.T, addr string, d Dialer) {
	t.Helper()
	ctx := testCtx(t)
	cc := newClient(t, addr, d)

	got, err := unary(ctx, cc, "hello")
	if err != nil || got != "echo:hello" {
		t.Fatalf("unary = %q, %v; want echo:hello", got, err)
	}
	msgs, err := serverStream(ctx, cc, 50)
	if err != nil || len(msgs) != 50 || msgs[0] != "0" || msgs[49] != "49" {
		t.Fatalf("server stream = %d msgs %v, %v; want 0..49", len(msgs), msgs, err)
	}
	in := []string{"a", "bb", "ccc", string(make([]byte, 100<<10))}
	echoed, err := bidi(ctx, cc, in)
	if err != nil {
		t.Fatalf("bidi: %v", err)
	}
	for i, m := range in {
		if echoed[i] != "echo:"+m {
			t.Fatalf("bidi message %d: got %d bytes, want %d", i, len(echoed[i]), len(m)+5)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := strconv.Itoa(i)
			switch i % 3 {
			case 0:
				got, err := unary(ctx, cc, msg)
				if err == nil && got != "echo:"+msg {
					err = fmt.Errorf("unary %d = %q", i, got)
				}
				errs <- err
			case 1:
				got, err := serverStream(ctx, cc, 5)
				if err == nil && !slices.Equal(got, []string{"0", "1", "2", "3", "4"}) {
					err = fmt.Errorf("stream %d = %q", i, got)
				}
				errs <- err
			default:
				got, err := bidi(ctx, cc, []string{msg, msg})
				if err == nil && !slices.Equal(got, []string{"echo:" + msg, "echo:" + msg}) {
					err = fmt.Errorf("bidi %d = %q", i, got)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestGRPCThroughDialerAndServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dialer  Dialer
		wrap    bool // hide the *grpc.Server behind an http.Handler
		counter func(*Server) int64
	}{
		{"upgrade/native", Dialer{}, false, func(s *Server) int64 { return s.nNative.Load() }},
		{"prior-knowledge/native", Dialer{PriorKnowledge: true}, false, func(s *Server) int64 { return s.nNative.Load() }},
		{"upgrade/servehttp", Dialer{}, true, func(s *Server) int64 { return s.nHTTP2.Load() }},
		{"prior-knowledge/servehttp", Dialer{PriorKnowledge: true}, true, func(s *Server) int64 { return s.nHTTP2.Load() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs := newGRPCServer(t)
			srv := &Server{HTTP2Handler: gs}
			if tc.wrap {
				srv.HTTP2Handler = http.HandlerFunc(gs.ServeHTTP)
			}
			addr := startServer(t, srv)
			checkRPCs(t, addr, tc.dialer)
			if n := tc.counter(srv); n != 1 {
				t.Errorf("connections on the expected path = %d, want 1 (native %d, x/net %d, foreign %d, http1 %d)",
					n, srv.nNative.Load(), srv.nHTTP2.Load(), srv.nForeign.Load(), srv.nHTTP1.Load())
			}
			if n := srv.nForeign.Load(); n != 0 {
				t.Errorf("foreign upgrades = %d, want 0 for our own Dialer", n)
			}
		})
	}
}

// TestServeHTTPInOwnServer mounts Server as the handler of an http.Server of
// the caller's and checks that Dialer's upgrade and prior knowledge (a "PRI *"
// request to net/http) still reach the native transport.
func TestServeHTTPInOwnServer(t *testing.T) {
	gs := newGRPCServer(t)
	srv := &Server{HTTP2Handler: gs, NonUpgradeHandler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "plain")
	})}
	addr := serveHTTPServer(t, &http.Server{Handler: srv}, srv)

	t.Run("upgrade", func(t *testing.T) { checkRPCs(t, addr, Dialer{}) })
	t.Run("prior-knowledge", func(t *testing.T) { checkRPCs(t, addr, Dialer{PriorKnowledge: true}) })
	if n := srv.nNative.Load(); n != 2 {
		t.Errorf("native connections = %d, want 2", n)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("plain HTTP/1.1 status = %d, want 200", resp.StatusCode)
	}
}

// TestGRPCStoppedBeforeClose checks that a connection arriving after the
// gRPC server stopped is closed rather than left hanging.
func TestGRPCStoppedBeforeClose(t *testing.T) {
	gs := newGRPCServer(t)
	srv := &Server{HTTP2Handler: gs}
	addr := startServer(t, srv)
	ctx := testCtx(t)
	if _, err := unary(ctx, newClient(t, addr, Dialer{}), "x"); err != nil {
		t.Fatal(err)
	}
	gs.Stop()
	_, err := unary(ctx, newClient(t, addr, Dialer{PriorKnowledge: true}), "x")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("unary after Stop = %v, want Unavailable", err)
	}
}
