package kvresolver

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

const (
	// MaxRecordSize is the largest record, in bytes, that ParseRecord
	// accepts and Register writes.
	MaxRecordSize = 8 << 10
	// MaxMetadata is the most metadata entries a record may carry.
	MaxMetadata = 64
)

// Record is what Register stores under services/<name>/<address>, as JSON:
//
//	{"address":"10.0.1.7:8443","expires":"2025-01-02T03:04:05.123456789Z","metadata":{"zone":"a"}}
//
// Readers ignore a record once it has expired.
type Record struct {
	// Address is the canonical "host:port" (see ValidateAddress); it must
	// equal the last segment of the record's key.
	Address string
	// Expires is when readers stop trusting the record.
	Expires time.Time
	// Metadata is free-form; it may be nil.
	Metadata map[string]string
}

// Marshal returns the record's JSON, after checking that ParseRecord would
// accept it.
func (r Record) Marshal() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(struct {
		Address  string            `json:"address"`
		Expires  string            `json:"expires"`
		Metadata map[string]string `json:"metadata,omitempty"`
	}{r.Address, r.Expires.UTC().Format(time.RFC3339Nano), r.Metadata})
	if err != nil {
		return nil, fmt.Errorf("kvresolver: marshal record: %w", err)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("kvresolver: record of %d bytes, over the %d-byte limit", len(b), MaxRecordSize)
	}
	return b, nil
}

func (r Record) check() error {
	c, err := ValidateAddress(r.Address)
	if err != nil {
		return err
	}
	if c != r.Address {
		return fmt.Errorf("kvresolver: address %q is not in canonical form %q", r.Address, c)
	}
	if r.Expires.IsZero() {
		return errors.New("kvresolver: record has no expiry")
	}
	if y := r.Expires.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("kvresolver: record expiry year %d out of range", y)
	}
	if len(r.Metadata) > MaxMetadata {
		return fmt.Errorf("kvresolver: %d metadata entries, over the limit of %d", len(r.Metadata), MaxMetadata)
	}
	for k, v := range r.Metadata {
		if k == "" {
			return errors.New("kvresolver: empty metadata key")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("kvresolver: metadata %q is not valid UTF-8", k)
		}
	}
	return nil
}

// ParseRecord parses a record strictly: at most MaxRecordSize bytes of
// valid UTF-8 holding one JSON object with a string "address" (valid and
// canonical), a string "expires" (RFC 3339) and optionally an object
// "metadata" of at most MaxMetadata string values; no other field, no
// duplicate field, nothing after the object. It does not check the expiry
// against the clock.
func ParseRecord(b []byte) (Record, error) {
	r, err := parseRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("kvresolver: invalid record: %w", err)
	}
	return r, nil
}

func parseRecord(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxRecordSize {
		return r, fmt.Errorf("%d bytes, over the %d-byte limit", len(b), MaxRecordSize)
	}
	if !utf8.Valid(b) {
		return r, errors.New("not valid UTF-8")
	}
	p := &parser{b: b}
	var haveAddr, haveExp, haveMD bool
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "address":
			if haveAddr {
				return errors.New(`duplicate field "address"`)
			}
			haveAddr = true
			r.Address, err = p.string(`"address"`)
			return err
		case "expires":
			if haveExp {
				return errors.New(`duplicate field "expires"`)
			}
			haveExp = true
			s, err := p.string(`"expires"`)
			if err != nil {
				return err
			}
			if r.Expires, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf(`"expires": %w`, err)
			}
			return nil
		case "metadata":
			if haveMD {
				return errors.New(`duplicate field "metadata"`)
			}
			haveMD = true
			r.Metadata, err = p.metadata()
			return err
		default:
			return fmt.Errorf("unknown field %.40q", key)
		}
	})
	if err != nil {
		return r, err
	}
	p.space()
	if p.i != len(p.b) {
		return r, fmt.Errorf("data after the object at byte %d", p.i)
	}
	if !haveAddr {
		return r, errors.New(`no "address"`)
	}
	if !haveExp {
		return r, errors.New(`no "expires"`)
	}
	if err := r.check(); err != nil {
		return Record{}, err
	}
	return r, nil
}

func (p *parser) metadata() (map[string]string, error) {
	md := map[string]string{}
	err := p.object(func(k string) error {
		if _, dup := md[k]; dup {
			return fmt.Errorf("duplicate metadata key %.40q", k)
		}
		if len(md) == MaxMetadata {
			return fmt.Errorf("over %d metadata entries", MaxMetadata)
		}
		v, err := p.string("metadata value")
		md[k] = v
		return err
	})
	if err != nil {
		return nil, fmt.Errorf(`"metadata": %w`, err)
	}
	return md, nil
}

// parser reads the subset of JSON a record uses: objects and strings. It
// is strict (RFC 8259 strings, no duplicate fields) and allocates little.
type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// expect skips white space and then c.
func (p *parser) expect(c byte) error {
	p.space()
	if p.i == len(p.b) {
		return fmt.Errorf("want %q at byte %d, got the end", c, p.i)
	}
	if p.b[p.i] != c {
		return fmt.Errorf("want %q at byte %d, got %q", c, p.i, p.b[p.i])
	}
	p.i++
	return nil
}

// object reads an object, calling member for each key with the parser at
// the key's value.
func (p *parser) object(member func(key string) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		k, err := p.string("field name")
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := member(k); err != nil {
			return err
		}
		p.space()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return nil
		}
		if err := p.expect(','); err != nil {
			return fmt.Errorf("%w (or '}')", err)
		}
	}
}

// string reads a JSON string.
func (p *parser) string(what string) (string, error) {
	p.space()
	if p.i == len(p.b) || p.b[p.i] != '"' {
		if p.i == len(p.b) {
			return "", fmt.Errorf("%s: want a string at byte %d, got the end", what, p.i)
		}
		return "", fmt.Errorf("%s: want a string at byte %d, got %q", what, p.i, p.b[p.i])
	}
	start := p.i
	p.i++
	escaped := false
	for {
		if p.i == len(p.b) {
			return "", fmt.Errorf("%s: unterminated string at byte %d", what, start)
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !escaped {
				return string(p.b[start+1 : p.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				return "", fmt.Errorf("%s: %w", what, err)
			}
			return s, nil
		case c < 0x20:
			return "", fmt.Errorf("%s: control character %q in string at byte %d", what, c, p.i)
		case c == '\\':
			escaped = true
			if p.i+1 == len(p.b) {
				return "", fmt.Errorf("%s: unterminated string at byte %d", what, start)
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) || !isHex4(p.b[p.i+2:p.i+6]) {
					return "", fmt.Errorf("%s: bad \\u escape at byte %d", what, p.i)
				}
				p.i += 6
			default:
				return "", fmt.Errorf("%s: bad escape at byte %d", what, p.i)
			}
		default:
			p.i++
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
