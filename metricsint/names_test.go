package metricsint

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestBaseName(t *testing.T) {
	tests := []struct {
		name, prefix, side, fullMethod, want string
	}{
		{"plain", "rpc", sideServer, "/grpc.health.v1.Health/Check", "rpc.grpc_health_v1_Health.Check.server."},
		{"no prefix", "", sideClient, "/a.B/C", "a_B.C.client."},
		{"dotted prefix", "app.rpc", sideServer, "/S/M", "app.rpc.S.M.server."},
		{"prefix sanitized", ".my-app..rpc v2.", sideServer, "/S/M", "my_app.rpc_v2.S.M.server."},
		{"no leading slash", "p", sideServer, "S/M", "p.S.M.server."},
		{"no slash at all", "p", sideServer, "justmethod", "p._.justmethod.server."},
		{"empty", "p", sideServer, "", "p._._.server."},
		{"empty parts", "p", sideServer, "//", "p._._.server."},
		{"extra slash", "p", sideServer, "/a/b/c", "p.a_b.c.server."},
		{"unsafe bytes", "p", sideServer, "/ſvc.ñ/m{x}=1 2", "p.__vc___.m_x__1_2.server."},
		{"graphite and prom specials", "p", sideServer, "/s:t;a,g/m*e", "p.s_t_a_g.m_e.server."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := baseName(sanitizePrefix(tt.prefix), tt.side, tt.fullMethod); got != tt.want {
				t.Errorf("baseName(%q, %q, %q) = %q, want %q", tt.prefix, tt.side, tt.fullMethod, got, tt.want)
			}
		})
	}
}

func TestCodeName(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK:              "handled.OK",
		codes.NotFound:        "handled.NotFound",
		codes.Unauthenticated: "handled.Unauthenticated",
		codes.Code(17):        "handled.Code_17_",
	} {
		if got := codeName(c); got != want {
			t.Errorf("codeName(%d) = %q, want %q", c, got, want)
		}
	}
	if numCodes != 17 {
		t.Errorf("numCodes = %d", numCodes)
	}
}

// checkName reports why name is not a safe metric name, or "".
func checkName(name string) string {
	if name == "" {
		return "empty"
	}
	for _, seg := range strings.Split(name, ".") {
		if seg == "" {
			return "empty segment"
		}
		for i := 0; i < len(seg); i++ {
			if !safeByte(seg[i]) {
				return "unsafe byte"
			}
		}
	}
	return ""
}

// FuzzMetricNames checks that any method name a peer can send, under any
// prefix, gives a name of non-empty [A-Za-z0-9_] segments, and that the
// service and method always take exactly two of them.
func FuzzMetricNames(f *testing.F) {
	f.Add("rpc", "/grpc.health.v1.Health/Check")
	f.Add("", "")
	f.Add("a..b", "//x//")
	f.Add(".", "/\x00\xff/\u00e9")
	f.Fuzz(func(t *testing.T, prefix, fullMethod string) {
		p := sanitizePrefix(prefix)
		if p != "" {
			if why := checkName(p); why != "" {
				t.Fatalf("sanitizePrefix(%q) = %q: %s", prefix, p, why)
			}
		}
		for _, side := range []string{sideServer, sideClient} {
			base := baseName(p, side, fullMethod)
			if !strings.HasSuffix(base, "."+side+".") {
				t.Fatalf("baseName = %q, no side suffix", base)
			}
			name := base + nameStarted
			if why := checkName(name); why != "" {
				t.Fatalf("name %q: %s", name, why)
			}
			rest := strings.TrimPrefix(name, p)
			if p != "" {
				rest = strings.TrimPrefix(rest, ".")
			}
			if n := strings.Count(rest, "."); n != 3 {
				t.Fatalf("name %q: service and method take %d segments, want 2", name, n-1)
			}
			if name == totalBaseName(p, side)+nameStarted {
				t.Fatalf("method %q collides with the totals", fullMethod)
			}
		}
	})
}
