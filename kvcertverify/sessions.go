package kvcertverify

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"sync/atomic"
)

// maxSessions bounds the TLS sessions a ClientCredentials keeps for
// resumption.
const maxSessions = 256

// sessionCache keeps TLS sessions for resumption with the server
// certificate each was made with, so that a session whose certificate is
// about to expire is not resumed: the resumed handshake would fail
// verification, and fail an RPC, where a full one succeeds with the
// server's next certificate.
type sessionCache struct {
	mu sync.Mutex
	m  map[string]sessionEntry
}

type sessionEntry struct {
	cs   *tls.ClientSessionState
	leaf *x509.Certificate
}

func newSessionCache() *sessionCache { return &sessionCache{m: map[string]sessionEntry{}} }

// handshakeSessions is the tls.ClientSessionCache of one handshake: it
// learns the server certificate in VerifyConnection and records it with the
// sessions the server hands out afterwards.
type handshakeSessions struct {
	c    *ClientCredentials
	leaf atomic.Pointer[x509.Certificate]
}

// Get implements tls.ClientSessionCache.
func (h *handshakeSessions) Get(key string) (*tls.ClientSessionState, bool) {
	s := h.c.sessions
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, false
	}
	if h.c.cfg.now().Add(h.c.cfg.handshakeTimeout).After(e.leaf.NotAfter) {
		delete(s.m, key)
		return nil, false
	}
	return e.cs, true
}

// Put implements tls.ClientSessionCache.
func (h *handshakeSessions) Put(key string, cs *tls.ClientSessionState) {
	s := h.c.sessions
	s.mu.Lock()
	defer s.mu.Unlock()
	leaf := h.leaf.Load()
	if cs == nil || leaf == nil {
		delete(s.m, key)
		return
	}
	if _, ok := s.m[key]; !ok && len(s.m) >= maxSessions {
		for k := range s.m { // evict one at random
			delete(s.m, k)
			break
		}
	}
	s.m[key] = sessionEntry{cs: cs, leaf: leaf}
}
