package h2c

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http2"
)

const (
	// clientPreface is the HTTP/2 connection preface (RFC 9113 §3.4).
	clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	// nativeHeader is sent by Dialer on its upgrade request and echoed by
	// Server on the 101 response when both ends agree that the upgrade
	// request is not answered on stream 1: the connection then starts afresh
	// with the client's connection preface, exactly as with prior knowledge.
	nativeHeader = "Grpcutil-H2c"
	nativeValue  = "native"

	// maxSettingsHeaderLen bounds the HTTP2-Settings header value. Six bytes
	// per setting; no peer has a reason to send more than a few dozen.
	maxSettingsHeaderLen = 1024
)

// dialerSettings is the HTTP2-Settings value Dialer sends: a single
// SETTINGS_ENABLE_PUSH = 0, so that a foreign server never pushes.
var dialerSettings = base64.RawURLEncoding.EncodeToString([]byte{0, 2, 0, 0, 0, 0})

// errorf returns an error with the package prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("h2c: "+format, args...)
}

// decodeSettings validates an HTTP2-Settings header value (RFC 9113 §3.2.1 of
// RFC 7540: base64url, trailing '=' omitted, the payload of a SETTINGS frame)
// and returns the decoded payload.
func decodeSettings(v string) ([]byte, error) {
	if len(v) > maxSettingsHeaderLen {
		return nil, errorf("HTTP2-Settings header is %d bytes, limit %d", len(v), maxSettingsHeaderLen)
	}
	v = strings.TrimRight(v, "=")
	if v == "" {
		return nil, errors.New("h2c: HTTP2-Settings header is empty")
	}
	// The decoder skips '\r' and '\n'; a token68 has neither.
	if i := strings.IndexFunc(v, func(r rune) bool {
		return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}); i >= 0 {
		return nil, errorf("HTTP2-Settings header has a byte outside base64url at offset %d", i)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil {
		return nil, errorf("HTTP2-Settings header is not base64url: %w", err)
	}
	if len(b)%6 != 0 {
		return nil, errorf("HTTP2-Settings payload is %d bytes, not a multiple of 6", len(b))
	}
	for i := 0; i < len(b); i += 6 {
		s := http2.Setting{
			ID:  http2.SettingID(uint16(b[i])<<8 | uint16(b[i+1])),
			Val: uint32(b[i+2])<<24 | uint32(b[i+3])<<16 | uint32(b[i+4])<<8 | uint32(b[i+5]),
		}
		if err := s.Valid(); err != nil {
			return nil, errorf("HTTP2-Settings: invalid setting %v: %w", s, err)
		}
	}
	return b, nil
}

// hasToken reports whether any of the comma-separated header values holds
// token, compared case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for len(v) > 0 {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// isH2CUpgrade reports whether h asks for an upgrade to h2c at all (whether
// or not the request is well formed).
func isH2CUpgrade(h http.Header) bool {
	return hasToken(h.Values("Upgrade"), "h2c")
}

// checkUpgrade validates an HTTP/1.1 request that asks for `Upgrade: h2c` and
// returns the decoded HTTP2-Settings payload.
func checkUpgrade(r *http.Request) ([]byte, error) {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		return nil, errorf("upgrade to h2c needs HTTP/1.1, got %s", r.Proto)
	}
	conn := r.Header.Values("Connection")
	if !hasToken(conn, "Upgrade") || !hasToken(conn, "HTTP2-Settings") {
		return nil, errors.New("h2c: Connection header must list both Upgrade and HTTP2-Settings")
	}
	vs := r.Header.Values("HTTP2-Settings")
	switch len(vs) {
	case 0:
		return nil, errors.New("h2c: missing HTTP2-Settings header")
	case 1:
	default:
		return nil, errorf("%d HTTP2-Settings headers, want exactly one", len(vs))
	}
	return decodeSettings(vs[0])
}
