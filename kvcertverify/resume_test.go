package kvcertverify

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
)

// TestSessionResumption serves HTTPS with the server's tls.Config hook and
// checks that a resumed session is verified too: once the server's
// certificate is no longer published, resuming its session fails.
func TestSessionResumption(t *testing.T) {
	store := kvstore.NewMemory()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	sc, err := NewServerTransportCredentials(context.Background(), store, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(lis, sc.TLSConfig()))
	}()
	defer func() {
		srv.Close()
		<-done
	}()

	clock := newFakeClock()
	clock.now = time.Now()
	cc := NewClientTransportCredentials(store, WithTime(clock.Now), WithCacheTTL(10*time.Second))
	cfg, err := cc.TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	get := func() (*tls.ConnectionState, error) {
		tr.CloseIdleConnections() // a new connection, and handshake, each time
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "hello" {
			t.Fatalf("body %q, %v", b, err)
		}
		return resp.TLS, nil
	}
	st, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if st.DidResume || st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "h2" {
		t.Fatalf("first connection: resumed %v, version %x, ALPN %q", st.DidResume, st.Version, st.NegotiatedProtocol)
	}
	if st, err = get(); err != nil {
		t.Fatal(err)
	}
	if !st.DidResume {
		t.Fatal("second connection did not resume the session")
	}

	// Another certificate is published in place of the server's; once the
	// cache has expired, the resumed session must be refused.
	other := EncodeBundle(selfSigned(t, leafFor(addr, clock.now.Add(-time.Hour), clock.now.Add(time.Hour))))
	if err := store.Put(context.Background(), "certs/"+addr, other); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Second)
	cc.sessions.mu.Lock()
	n := len(cc.sessions.m)
	cc.sessions.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d sessions cached, want the one to resume", n)
	}
	_, err = get()
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("resumed session with an unpublished certificate: %v", err)
	}
	// crypto/tls drops a session whose resumption failed: it was tried.
	cc.sessions.mu.Lock()
	n = len(cc.sessions.m)
	cc.sessions.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d sessions cached after the failed resumption", n)
	}
}
