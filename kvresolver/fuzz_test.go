package kvresolver

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"testing"
	"time"
	"unicode/utf8"
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

// strictJSON decodes b with encoding/json under the record's rules: one
// object, exact-case known fields, no duplicates, string values, metadata an
// object of strings. ok false means encoding/json (so strict) rejects it.
func strictJSON(b []byte) (addr, exp string, md map[string]string, hasMD, ok bool) {
	if !utf8.Valid(b) || len(b) > MaxRecordSize || !json.Valid(b) {
		return
	}
	d := json.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	if err != nil || tok != json.Delim('{') {
		return
	}
	seen := map[string]bool{}
	var haveA, haveE bool
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return
		}
		k := kt.(string)
		if seen[k] {
			return
		}
		seen[k] = true
		switch k {
		case "address", "expires":
			vt, err := d.Token()
			if err != nil {
				return
			}
			s, isStr := vt.(string)
			if !isStr {
				return
			}
			if k == "address" {
				addr, haveA = s, true
			} else {
				exp, haveE = s, true
			}
		case "metadata":
			vt, err := d.Token()
			if err != nil || vt != json.Delim('{') {
				return
			}
			hasMD = true
			md = map[string]string{}
			for d.More() {
				mk, err := d.Token()
				if err != nil {
					return
				}
				if _, dup := md[mk.(string)]; dup {
					return
				}
				mv, err := d.Token()
				if err != nil {
					return
				}
				s, isStr := mv.(string)
				if !isStr {
					return
				}
				md[mk.(string)] = s
			}
			if _, err := d.Token(); err != nil {
				return
			}
		default:
			return
		}
	}
	if _, err := d.Token(); err != nil {
		return
	}
	if _, err := d.Token(); err != io.EOF {
		return
	}
	return addr, exp, md, hasMD, haveA && haveE
}

// FuzzParseRecordStrict checks ParseRecord against encoding/json in both
// directions: it accepts exactly what a strict encoding/json decoding (one
// object, the three fields in exact case, no duplicate, string values,
// metadata an object of strings, valid UTF-8) accepts and Record's rules
// allow, and reads the same values.
func FuzzParseRecordStrict(f *testing.F) {
	f.Add([]byte(`{"address":"10.0.0.1:80","expires":"2030-01-01T00:00:00.5Z"}`))
	f.Add([]byte(`{"address":"[::1]:443","expires":"2030-01-01T00:00:00+02:00","metadata":{"zone":"a","w":"\u00e9"}}`))
	f.Add([]byte(` {"addr\u0065ss":"h.example:1" , "expires":"2030-01-01T00:00:00Z","metadata":{"\ud800":"\"\\\/\b\f\n\r\t"}} `))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		addr, exp, md, hasMD, ok := strictJSON(b)
		if err == nil {
			if !ok {
				t.Fatalf("ParseRecord accepted %q, strict encoding/json rejects it", b)
			}
			e, _ := time.Parse(time.RFC3339Nano, exp)
			if addr != r.Address || !e.Equal(r.Expires) || !maps.Equal(md, r.Metadata) || (hasMD && r.Metadata == nil) {
				t.Fatalf("%q: ParseRecord %+v, encoding/json %q %q %v", b, r, addr, exp, md)
			}
			return
		}
		if !ok {
			return
		}
		e, perr := time.Parse(time.RFC3339Nano, exp)
		if perr != nil {
			return
		}
		if (Record{Address: addr, Expires: e, Metadata: md}).check() != nil {
			return
		}
		if hasMD && len(md) > MaxMetadata {
			return
		}
		t.Fatalf("ParseRecord rejected %q (%v), which strict encoding/json accepts", b, err)
	})
}
