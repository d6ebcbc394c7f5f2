package h2c

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// foreignServer is an independent, RFC 7540 §3.2 upgrade-capable h2c server
// built only from net/http and golang.org/x/net/http2 (no code of this
// package): it answers the upgrade request on stream 1 and knows nothing of
// the native marker.
type foreignServer struct {
	ln       net.Listener
	handler  http.Handler
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	upgrades int
}

func startForeignServer(t *testing.T, h http.Handler) *foreignServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &foreignServer{ln: ln, handler: h, conns: map[net.Conn]bool{}}
	fs.wg.Add(1)
	go fs.accept()
	t.Cleanup(func() {
		ln.Close()
		fs.mu.Lock()
		for c := range fs.conns {
			c.Close()
		}
		fs.mu.Unlock()
		fs.wg.Wait()
	})
	return fs
}

func (fs *foreignServer) accept() {
	defer fs.wg.Done()
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fs.mu.Lock()
		fs.conns[c] = true
		fs.mu.Unlock()
		fs.wg.Add(1)
		go func() {
			defer fs.wg.Done()
			defer c.Close()
			fs.serve(c)
		}()
	}
}

type foreignConn struct {
	net.Conn
	r io.Reader
}

func (c foreignConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (fs *foreignServer) serve(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if !strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		return
	}
	settings, err := base64.RawURLEncoding.DecodeString(req.Header.Get("HTTP2-Settings"))
	if err != nil {
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	req.Body = io.NopCloser(strings.NewReader(string(body)))
	if _, err := c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")); err != nil {
		return
	}
	fs.mu.Lock()
	fs.upgrades++
	fs.mu.Unlock()
	(&http2.Server{}).ServeConn(foreignConn{c, br}, &http2.ServeConnOpts{
		BaseConfig:     &http.Server{ErrorLog: log.New(io.Discard, "", 0)},
		Handler:        fs.handler,
		UpgradeRequest: req,
		Settings:       settings,
	})
}

// TestDialerForeignServer runs gRPC through Dialer against the foreign
// server (grpc.Server.ServeHTTP behind x/net/http2), which answers the
// upgrade's OPTIONS request on stream 1: the stream ID shift must keep
// grpc-go's streams apart from it.
func TestDialerForeignServer(t *testing.T) {
	gs := newGRPCServer(t)
	var stream1 sync.WaitGroup
	stream1.Add(1)
	var once sync.Once
	fs := startForeignServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			// The upgrade request, on stream 1: answer with a body
			// (the Dialer's side discards it) and headers that fill the
			// HPACK table, which the client must still decode.
			w.Header().Set("X-Stream-One", strings.Repeat("h", 200))
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, strings.Repeat("stream one ", 1000))
			once.Do(stream1.Done)
			return
		}
		gs.ServeHTTP(w, r)
	}))
	checkRPCs(t, fs.ln.Addr().String(), Dialer{})
	stream1.Wait()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.upgrades != 1 {
		t.Errorf("foreign server upgrades = %d, want 1", fs.upgrades)
	}
}

// TestDialerForeignGRPCHandler uses the gRPC server as the foreign handler for
// everything, including the OPTIONS upgrade request it rejects on stream 1.
func TestDialerForeignGRPCHandler(t *testing.T) {
	gs := newGRPCServer(t)
	fs := startForeignServer(t, gs)
	checkRPCs(t, fs.ln.Addr().String(), Dialer{})
}

// scriptedServer answers each connection with fn and reports what it read.
func scriptedServer(t *testing.T, fn func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				fn(c, req)
				select { // hold the connection until the test ends
				case <-done:
				case <-time.After(30 * time.Second):
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(done)
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestDialerErrors(t *testing.T) {
	write := func(s string) func(net.Conn, *http.Request) {
		return func(c net.Conn, _ *http.Request) { io.WriteString(c, s) }
	}
	for _, tc := range []struct {
		name    string
		d       Dialer
		answer  func(net.Conn, *http.Request)
		ctx     time.Duration
		wantErr string
	}{{
		name:    "200",
		answer:  write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
		wantErr: `server did not switch protocols: got "200 OK", want 101 Switching Protocols`,
	}, {
		name:    "400",
		answer:  write("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"),
		wantErr: `got "400 Bad Request"`,
	}, {
		name:    "101 to websocket",
		answer:  write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
		wantErr: `101 response upgrades to "websocket", want h2c`,
	}, {
		name:    "garbage",
		answer:  write("SSH-2.0-OpenSSH\r\n\r\n"),
		wantErr: "read response: malformed HTTP response",
	}, {
		name:    "closed",
		answer:  func(c net.Conn, _ *http.Request) { c.Close() },
		wantErr: "read response: unexpected EOF",
	}, {
		name:    "oversize header",
		d:       Dialer{MaxResponseHeaderBytes: 1024},
		answer:  write("HTTP/1.1 101 Switching Protocols\r\nX: " + strings.Repeat("a", 4096) + "\r\n\r\n"),
		wantErr: "response header exceeds 1024 bytes",
	}, {
		name:    "silent, ctx deadline",
		answer:  func(net.Conn, *http.Request) {},
		ctx:     200 * time.Millisecond,
		wantErr: "context deadline exceeded",
	}, {
		name:    "silent, handshake timeout",
		d:       Dialer{HandshakeTimeout: 200 * time.Millisecond},
		answer:  func(net.Conn, *http.Request) {},
		wantErr: "i/o timeout",
	}, {
		name:    "bad path",
		d:       Dialer{Path: "/a b"},
		answer:  func(net.Conn, *http.Request) {},
		wantErr: `h2c: invalid upgrade Host`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedServer(t, tc.answer)
			ctx := testCtx(t)
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			c, err := tc.d.DialContext(ctx, addr)
			if err == nil {
				c.Close()
				t.Fatal("DialContext succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "h2c: ") {
				t.Fatalf("error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestDialerCancel(t *testing.T) {
	started := make(chan struct{})
	addr := scriptedServer(t, func(net.Conn, *http.Request) { close(started) })
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := Dialer{}.DialContext(ctx, addr)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

// TestDialerKeepsBufferedBytes checks the seed bug's fix: bytes the server
// sends right behind the 101, in the same segment, reach the caller.
func TestDialerKeepsBufferedBytes(t *testing.T) {
	settings := "\x00\x00\x00\x04\x00\x00\x00\x00\x00" // empty SETTINGS frame
	for _, native := range []bool{true, false} {
		addr := scriptedServer(t, func(c net.Conn, _ *http.Request) {
			resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
			if native {
				resp += "Grpcutil-H2c: native\r\n"
			}
			io.WriteString(c, resp+"\r\n"+settings)
		})
		c, err := Dialer{}.DialContext(testCtx(t), addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(settings))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != settings {
			t.Errorf("native=%v: read %q, %v; want the SETTINGS frame", native, got, err)
		}
		c.Close()
	}
}

func TestDialerDialError(t *testing.T) {
	d := Dialer{Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no route")
	}}
	_, err := d.DialContext(testCtx(t), "127.0.0.1:1")
	if err == nil || err.Error() != "h2c: dial 127.0.0.1:1: no route" {
		t.Fatalf("error = %v", err)
	}
}
