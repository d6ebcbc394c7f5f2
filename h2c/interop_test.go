package h2c

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// requirePeersEnv turns a missing curl or h2load from a skip into a failure
// (CI sets it).
const requirePeersEnv = "GRPCUTIL_REQUIRE_H2C_PEERS"

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(requirePeersEnv) == "1" {
			t.Fatalf("%s not found and %s=1: %v", name, requirePeersEnv, err)
		}
		t.Skipf("%s not found (set %s=1 to make this a failure): %v", name, requirePeersEnv, err)
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, requireTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// curlResult is what one curl run saw.
type curlResult struct {
	version string // %{http_version}: "1.1" or "2"
	headers string // every header block, trailers included (-D)
	body    string
}

func curl(t *testing.T, args ...string) curlResult {
	t.Helper()
	dir := t.TempDir()
	hdr, body := filepath.Join(dir, "headers"), filepath.Join(dir, "body")
	args = append([]string{"-sS", "--max-time", "30", "-D", hdr, "-o", body, "-w", "%{http_version}"}, args...)
	v := runTool(t, "curl", args...)
	h, err := os.ReadFile(hdr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(body)
	if err != nil {
		t.Fatal(err)
	}
	return curlResult{version: v, headers: strings.ReplaceAll(string(h), "\r\n", "\n"), body: string(b)}
}

// protoHandler writes which protocol, method and body reached it.
func protoHandler(tag string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %s %s", tag, r.Proto, r.Method, b)
	})
}

// TestCurlHTTPHandlers runs curl against a Server whose HTTP/2 side is a plain
// http.Handler (the x/net/http2 path).
func TestCurlHTTPHandlers(t *testing.T) {
	requireTool(t, "curl")
	srv := &Server{HTTP2Handler: protoHandler("h2"), NonUpgradeHandler: protoHandler("h1")}
	url := "http://" + startServer(t, srv) + "/x"
	for _, tc := range []struct {
		name        string
		args        []string
		wantVersion string
		wantBody    string
		want101     bool
	}{
		{"upgrade GET", []string{"--http2", url}, "2", "h2 HTTP/2.0 GET ", true},
		{"upgrade POST", []string{"--http2", "-d", "abc", url}, "2", "h2 HTTP/2.0 POST abc", true},
		{"prior knowledge", []string{"--http2-prior-knowledge", url}, "2", "h2 HTTP/2.0 GET ", false},
		{"prior knowledge POST", []string{"--http2-prior-knowledge", "-d", "xyz", url}, "2", "h2 HTTP/2.0 POST xyz", false},
		{"HTTP/1.1", []string{"--http1.1", url}, "1.1", "h1 HTTP/1.1 GET ", false},
		{"HTTP/1.1 websocket upgrade", []string{"--http1.1", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket", url}, "1.1", "h1 HTTP/1.1 GET ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := curl(t, tc.args...)
			if r.version != tc.wantVersion || r.body != tc.wantBody {
				t.Errorf("curl %v: version %q body %q; want %q %q", tc.args, r.version, r.body, tc.wantVersion, tc.wantBody)
			}
			if got := strings.Contains(r.headers, "HTTP/1.1 101 Switching Protocols"); got != tc.want101 {
				t.Errorf("saw 101 = %v, want %v; headers:\n%s", got, tc.want101, r.headers)
			}
		})
	}
	if srv.nForeign.Load() != 2 || srv.nHTTP2.Load() != 2 {
		t.Errorf("foreign upgrades %d, prior knowledge %d; want 2 and 2", srv.nForeign.Load(), srv.nHTTP2.Load())
	}
}

// TestCurlGRPC runs curl against a Server for a *grpc.Server: prior knowledge
// reaches the native transport, curl's upgrade (a POST with a body on stream
// 1) the ServeHTTP path; both answer with a grpc-status trailer.
func TestCurlGRPC(t *testing.T) {
	requireTool(t, "curl")
	gs := newGRPCServer(t)
	srv := &Server{HTTP2Handler: gs, NonUpgradeHandler: protoHandler("h1")}
	base := "http://" + startServer(t, srv)
	msg := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(msg, grpcFrame("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		mode       string
		method     string
		data       string
		wantStatus string
		wantBody   string
	}{
		{"prior knowledge", "--http2-prior-knowledge", "Unary", "@" + msg, "grpc-status: 0\n", string(grpcFrame("echo:hi"))},
		// No body for an unknown method: grpc-go answers before reading
		// the request and then resets the stream the client still has
		// open, which curl 7.88 can report as a framing error.
		{"prior knowledge unknown method", "--http2-prior-knowledge", "Nope", "", "grpc-status: 12\n", ""},
		{"upgrade", "--http2", "Unary", "@" + msg, "grpc-status: 0\n", string(grpcFrame("echo:hi"))},
		{"upgrade unknown method", "--http2", "Nope", "", "grpc-status: 12\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := curl(t, tc.mode, "-H", "content-type: application/grpc", "-H", "te: trailers",
				"--data-binary", tc.data, base+"/h2ctest.Echo/"+tc.method)
			if r.version != "2" || !strings.Contains(r.headers, tc.wantStatus) || r.body != tc.wantBody {
				t.Errorf("version %q body %q headers:\n%s\nwant %q and body %q", r.version, r.body, r.headers, tc.wantStatus, tc.wantBody)
			}
		})
	}
	if r := curl(t, "--http2-prior-knowledge", base+"/"); r.version != "2" || !strings.HasPrefix(r.headers, "HTTP/2 415") {
		t.Errorf("plain GET by prior knowledge: version %q headers:\n%s\nwant HTTP/2 415 from grpc-go", r.version, r.headers)
	}
	if r := curl(t, "--http1.1", base+"/"); r.body != "h1 HTTP/1.1 GET " {
		t.Errorf("HTTP/1.1 body %q", r.body)
	}
	if srv.nNative.Load() != 3 || srv.nForeign.Load() != 2 {
		t.Errorf("native %d, foreign upgrades %d; want 3 and 2", srv.nNative.Load(), srv.nForeign.Load())
	}
}

// TestCurlOwnHTTPServer runs curl's prior knowledge and upgrade against
// Server mounted as the handler of a plain http.Server.
func TestCurlOwnHTTPServer(t *testing.T) {
	requireTool(t, "curl")
	srv := &Server{HTTP2Handler: protoHandler("h2"), NonUpgradeHandler: protoHandler("h1")}
	hs := &http.Server{Handler: srv}
	url := "http://" + serveHTTPServer(t, hs, srv) + "/"
	for _, mode := range []string{"--http2", "--http2-prior-knowledge"} {
		if r := curl(t, mode, url); r.version != "2" || r.body != "h2 HTTP/2.0 GET " {
			t.Errorf("curl %s: version %q body %q", mode, r.version, r.body)
		}
	}
}

var h2loadRequests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed`)

func h2load(t *testing.T, args ...string) {
	t.Helper()
	out := runTool(t, "h2load", args...)
	m := h2loadRequests.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("h2load output has no request summary:\n%s", out)
	}
	if m[1] != m[4] || m[5] != "0" {
		t.Errorf("h2load %v: %s", args, m[0])
	}
}

// TestH2Load drives the Server with nghttp2's h2load: real gRPC unary calls
// on the native transport, requests to an http.Handler over x/net/http2, and
// HTTP/1.1 to NonUpgradeHandler.
func TestH2Load(t *testing.T) {
	requireTool(t, "h2load")
	gs := newGRPCServer(t)
	grpcSrv := &Server{HTTP2Handler: gs}
	grpcAddr := startServer(t, grpcSrv)
	msg := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(msg, grpcFrame("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	h2load(t, "-n", "1000", "-c", "4", "-m", "10", "-d", msg,
		"-H", "content-type: application/grpc", "-H", "te: trailers",
		"http://"+grpcAddr+"/h2ctest.Echo/Unary")
	if n := grpcSrv.nNative.Load(); n != 4 {
		t.Errorf("native connections = %d, want 4", n)
	}

	httpSrv := &Server{HTTP2Handler: protoHandler("h2"), NonUpgradeHandler: protoHandler("h1")}
	httpAddr := startServer(t, httpSrv)
	h2load(t, "-n", "500", "-c", "4", "-m", "10", "http://"+httpAddr+"/")
	h2load(t, "--h1", "-n", "200", "-c", "4", "http://"+httpAddr+"/")
	if httpSrv.nHTTP2.Load() != 4 || httpSrv.nHTTP1.Load() != 4 {
		t.Errorf("x/net connections %d, HTTP/1.1 connections %d; want 4 and 4", httpSrv.nHTTP2.Load(), httpSrv.nHTTP1.Load())
	}
}
