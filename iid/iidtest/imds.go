package iidtest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpcutil/grpcutil/iid"
)

// IMDS paths the fake serves.
const (
	TokenPath    = "/latest/api/token"
	DocumentPath = "/latest/dynamic/instance-identity/document"
	// SignaturePrefix + form name is the path of a signature.
	SignaturePrefix = "/latest/dynamic/instance-identity/"
)

// IMDS is a fake EC2 instance metadata service on a loopback httptest
// server, requiring IMDSv2 as a hardened instance does:
//
//   - PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds
//     (1 to 21600; 400 otherwise), refuses X-Forwarded-For (403), and answers
//     a fresh token with the TTL header echoed;
//   - GET without a valid, unexpired X-aws-ec2-metadata-token gets 401;
//   - GET of /latest/dynamic/instance-identity/{document,signature,pkcs7,
//     rsa2048} answers the document and its signatures (text/plain, no
//     trailing newline); other paths get 404, other methods 405;
//   - Throttle(n) answers the next n requests with 429.
//
// It is safe for concurrent use. Close it when done.
type IMDS struct {
	// URL is the endpoint to give the IMDS client (iid.WithEndpoint).
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	files    map[string][]byte
	tokens   map[string]time.Time
	throttle int
	counts   map[string]int
	now      func() time.Time
}

// NewIMDS starts a fake IMDS serving doc and its three signatures by s.
func NewIMDS(doc []byte, s *Signer) (*IMDS, error) {
	m := &IMDS{
		files:  map[string][]byte{DocumentPath: append([]byte(nil), doc...)},
		tokens: map[string]time.Time{},
		counts: map[string]int{},
		now:    time.Now,
	}
	for _, f := range []iid.Form{iid.FormRSA2048, iid.FormSignature, iid.FormPKCS7} {
		sig, err := s.Sign(f, doc)
		if err != nil {
			return nil, err
		}
		m.files[SignaturePrefix+string(f)] = sig
	}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	m.URL = m.srv.URL
	return m, nil
}

// Close shuts the server down.
func (m *IMDS) Close() { m.srv.Close() }

// Throttle makes the next n requests get 429 Too Many Requests.
func (m *IMDS) Throttle(n int) {
	m.mu.Lock()
	m.throttle = n
	m.mu.Unlock()
}

// SetFile replaces what the fake answers at path (e.g. DocumentPath, or
// SignaturePrefix+"rsa2048"), to serve tampered or oversize data.
func (m *IMDS) SetFile(path string, body []byte) {
	m.mu.Lock()
	m.files[path] = append([]byte(nil), body...)
	m.mu.Unlock()
}

// Count returns how many requests for path (TokenPath, DocumentPath, ...)
// the fake has received, answered or not.
func (m *IMDS) Count(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[path]
}

// ExpireTokens makes every token issued so far invalid, as when its TTL
// runs out.
func (m *IMDS) ExpireTokens() {
	m.mu.Lock()
	clear(m.tokens)
	m.mu.Unlock()
}

func (m *IMDS) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts[r.URL.Path]++
	if m.throttle > 0 {
		m.throttle--
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
		return
	}
	if r.URL.Path == TokenPath {
		m.serveToken(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	exp, ok := m.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
	if !ok || !m.now().Before(exp) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	body, ok := m.files[r.URL.Path]
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func (m *IMDS) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttlText := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
	ttl, err := strconv.Atoi(strings.TrimSpace(ttlText))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	m.tokens[tok] = m.now().Add(time.Duration(ttl) * time.Second)
	w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, tok)
}
