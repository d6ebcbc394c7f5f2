package h2c

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes req on a fresh connection to addr and returns the
// response, read with a generous deadline so a hang fails the test.
func rawExchange(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	// The server may reset the connection after answering a request it
	// did not read in full; a short body then shows as a mismatch.
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestMalformedUpgrade(t *testing.T) {
	gs := newGRPCServer(t)
	srv := &Server{HTTP2Handler: gs, NonUpgradeHandler: protoHandler("h1"), MaxUpgradeBodyBytes: 1024}
	addr := startServer(t, srv)
	const (
		head  = "GET / HTTP/1.1\r\nHost: x\r\n"
		conn  = "Connection: Upgrade, HTTP2-Settings\r\n"
		up    = "Upgrade: h2c\r\n"
		good  = "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
		close = "Connection: close\r\n"
	)
	for _, tc := range []struct {
		name     string
		req      string
		wantCode int
		wantBody string
	}{
		{"missing HTTP2-Settings", head + conn + up + close + "\r\n", 400, "h2c: missing HTTP2-Settings header"},
		{"empty HTTP2-Settings", head + conn + up + "HTTP2-Settings: \r\n\r\n", 400, "h2c: HTTP2-Settings header is empty"},
		{"HTTP2-Settings not base64url", head + conn + up + "HTTP2-Settings: AAMAAAB+AAQ/\r\n\r\n", 400, "h2c: HTTP2-Settings header has a byte outside base64url at offset 7"},
		{"HTTP2-Settings bad base64 length", head + conn + up + "HTTP2-Settings: AAAAA\r\n\r\n", 400, "h2c: HTTP2-Settings header is not base64url"},
		{"HTTP2-Settings odd length", head + conn + up + "HTTP2-Settings: AAMAAABkAA\r\n\r\n", 400, "h2c: HTTP2-Settings payload is 7 bytes, not a multiple of 6"},
		{"HTTP2-Settings truncated setting", head + conn + up + "HTTP2-Settings: AAMAAA\r\n\r\n", 400, "h2c: HTTP2-Settings payload is 4 bytes, not a multiple of 6"},
		{"HTTP2-Settings invalid value", head + conn + up + "HTTP2-Settings: AAIAAAAC\r\n\r\n", 400, "h2c: HTTP2-Settings: invalid setting [ENABLE_PUSH = 2]"},
		{"HTTP2-Settings oversize", head + conn + up + "HTTP2-Settings: " + strings.Repeat("A", 2000) + "\r\n\r\n", 400, "h2c: HTTP2-Settings header is 2000 bytes, limit 1024"},
		{"two HTTP2-Settings", head + conn + up + good + good + "\r\n", 400, "h2c: 2 HTTP2-Settings headers, want exactly one"},
		{"Connection lacks HTTP2-Settings", head + "Connection: Upgrade\r\n" + up + good + "\r\n", 400, "h2c: Connection header must list both Upgrade and HTTP2-Settings"},
		{"Connection lacks Upgrade", head + "Connection: HTTP2-Settings\r\n" + up + good + "\r\n", 400, "h2c: Connection header must list both Upgrade and HTTP2-Settings"},
		{"no Connection", head + up + good + "\r\n", 400, "h2c: Connection header must list both"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n" + conn + up + good + "\r\n", 400, "h2c: upgrade to h2c needs HTTP/1.1, got HTTP/1.0"},
		{"oversize Content-Length", "POST / HTTP/1.1\r\nHost: x\r\n" + conn + up + good + "Content-Length: 5000\r\n\r\n", 400, "h2c: upgrade request body of 5000 bytes exceeds the limit of 1024"},
		{"oversize chunked body", "POST / HTTP/1.1\r\nHost: x\r\n" + conn + up + good + "Transfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("x", 0x800) + "\r\n0\r\n\r\n", 400, "h2c: upgrade request body exceeds the limit of 1024 bytes"},
		{"native marker with body", "POST / HTTP/1.1\r\nHost: x\r\n" + conn + up + good + "Grpcutil-H2c: native\r\nContent-Length: 3\r\n\r\nabc", 400, "h2c: a native upgrade request must not carry a body"},
		{"upgrade to something else is plain HTTP/1.1", head + "Connection: Upgrade\r\nUpgrade: websocket\r\n" + close + "\r\n", 200, "h1 HTTP/1.1 GET "},
		{"oversize header", head + "X-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n", 431, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, tc.req)
			if resp.StatusCode != tc.wantCode || !strings.HasPrefix(body, tc.wantBody) {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
			if tc.wantCode == 400 && !resp.Close {
				t.Errorf("400 response keeps the connection open")
			}
		})
	}
	if n := srv.nNative.Load() + srv.nForeign.Load(); n != 0 {
		t.Errorf("%d malformed upgrades were switched", n)
	}
}

// TestDefaultNonUpgrade checks the 426 answer without a NonUpgradeHandler.
func TestDefaultNonUpgrade(t *testing.T) {
	addr := startServer(t, &Server{HTTP2Handler: protoHandler("h2")})
	resp, body := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "h2c" || !strings.HasPrefix(body, "h2c: ") {
		t.Errorf("got %d, Upgrade %q, body %q", resp.StatusCode, resp.Header.Get("Upgrade"), body)
	}
}

// expectClosed checks that the server closes c by itself, well before the
// client's own deadline.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept a slow connection open: %v", err)
	}
}

// TestSlowPeers checks that every phase before the switch is bounded in time.
func TestSlowPeers(t *testing.T) {
	srv := &Server{HTTP2Handler: protoHandler("h2"), ReadHeaderTimeout: 300 * time.Millisecond}
	addr := startServer(t, srv)
	for _, tc := range []struct {
		name string
		send string
	}{
		{"silent", ""},
		{"partial preface", clientPreface[:10]},
		{"partial request line", "GET / HT"},
		{"partial headers", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"},
		{"partial PRI", "PRI * HTTP/2.0\r\n\r\nSM"},
		{"slow upgrade body", "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAIAAAAA\r\nContent-Length: 10\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
		})
	}
}

// TestPRIThroughOwnServer checks the "PRI *" path of ServeHTTP, including a
// client that stops half-way through the preface.
func TestPRIThroughOwnServer(t *testing.T) {
	srv := &Server{HTTP2Handler: protoHandler("h2"), ReadHeaderTimeout: 300 * time.Millisecond}
	addr := serveHTTPServer(t, &http.Server{Handler: srv}, srv)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nS")
	expectClosed(t, c)

	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
	expectClosed(t, c2)
}

func TestServeErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Server{}).Serve(ln); err == nil || err.Error() != "h2c: Server.HTTP2Handler is nil" {
		t.Errorf("Serve without handler = %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener not closed: %v", err)
	}

	srv := &Server{HTTP2Handler: protoHandler("h2")}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

// TestCloseWithLiveConnections checks that Close ends connections Server
// owns: an idle HTTP/1.1 keep-alive, one mid-sniff, and an x/net/http2 one.
func TestCloseWithLiveConnections(t *testing.T) {
	srv := &Server{HTTP2Handler: protoHandler("h2"), NonUpgradeHandler: protoHandler("h1")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	keepAlive, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer keepAlive.Close()
	io.WriteString(keepAlive, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(keepAlive)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	sniffing, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sniffing.Close()
	io.WriteString(sniffing, "PRI")

	h2, err := Dialer{PriorKnowledge: true}.DialContext(testCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	io.WriteString(h2, clientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	h2.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(h2, make([]byte, 9)); err != nil { // server SETTINGS header
		t.Fatal(err)
	}

	srv.Close()
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
	for name, c := range map[string]net.Conn{"keep-alive": keepAlive, "sniffing": sniffing, "http2": h2} {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		var err error
		if name == "keep-alive" {
			_, err = br.ReadByte()
		} else {
			_, err = io.Copy(io.Discard, c)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s connection still open after Close", name)
		}
	}
}

func TestServeHTTPWithoutHandler(t *testing.T) {
	srv := &Server{NonUpgradeHandler: protoHandler("h1")}
	addr := serveHTTPServer(t, &http.Server{Handler: srv}, srv)
	resp, body := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAIAAAAA\r\n\r\n")
	if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(body, "h2c: Server.HTTP2Handler is nil") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	resp, body = rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "h1 HTTP/1.1 GET " {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}
