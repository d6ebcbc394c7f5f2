package kvresolver

import (
	"encoding/json"
	"maps"
	"testing"
)

// FuzzParseRecord checks that ParseRecord never panics, and that what it
// accepts survives a round trip through Marshal unchanged.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"address":"10.0.0.1:80","expires":"2030-01-01T00:00:00.5Z"}`))
	f.Add([]byte(`{"address":"[::1]:443","expires":"2030-01-01T00:00:00+02:00","metadata":{"zone":"a","w":"\u00e9"}}`))
	f.Add([]byte(`{"address":"host.example:8443","expires":"2030-01-01T00:00:00Z","metadata":{}}` + "\n"))
	f.Add([]byte(`{"address":"10.0.0.1:80","address":"10.0.0.2:80","expires":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"address":"10.0.0.1:80","expires":"2030-01-01T00:00:00Z"}{}`))
	f.Add([]byte(`{"address":"10.0.0.1:80","expires":"2030-01-01T00:00:00Z","metadata":{"a":1}}`))
	f.Add([]byte("\xff\xfe garbage"))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		// encoding/json agrees with what was accepted.
		var std struct {
			Address  string            `json:"address"`
			Expires  string            `json:"expires"`
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("ParseRecord accepted %q, encoding/json rejects it: %v", b, err)
		}
		if std.Address != r.Address || !maps.Equal(std.Metadata, r.Metadata) {
			t.Fatalf("ParseRecord read %+v, encoding/json %+v", r, std)
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed record %+v: %v", r, err)
		}
		r2, err := ParseRecord(out)
		if err != nil {
			t.Fatalf("ParseRecord(%q) of Marshal's output: %v", out, err)
		}
		if r2.Address != r.Address || !r2.Expires.Equal(r.Expires) || !maps.Equal(r2.Metadata, r.Metadata) {
			t.Fatalf("round trip changed %+v into %+v", r, r2)
		}
	})
}

// FuzzValidateAddress checks that ValidateAddress never panics and that
// its canonical form is a fixed point.
func FuzzValidateAddress(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "[::1]:080", "Host.Example:443", ":80", "[fe80::1%eth0]:80", "1.2.3.400:1", "[::ffff:1.2.3.4]:5", "a_b-c.d:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ValidateAddress(s)
		if err != nil {
			return
		}
		c2, err := ValidateAddress(c)
		if err != nil || c2 != c {
			t.Fatalf("ValidateAddress(%q) = %q, but ValidateAddress(%q) = %q, %v", s, c, c, c2, err)
		}
	})
}
