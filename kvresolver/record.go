package kvresolver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	d := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(d, '{'); err != nil {
		return r, err
	}
	var haveAddr, haveExp, haveMD bool
	for d.More() {
		key, err := stringToken(d, "field name")
		if err != nil {
			return r, err
		}
		switch key {
		case "address":
			if haveAddr {
				return r, errors.New(`duplicate field "address"`)
			}
			haveAddr = true
			if r.Address, err = stringToken(d, `"address"`); err != nil {
				return r, err
			}
		case "expires":
			if haveExp {
				return r, errors.New(`duplicate field "expires"`)
			}
			haveExp = true
			s, err := stringToken(d, `"expires"`)
			if err != nil {
				return r, err
			}
			if r.Expires, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return r, fmt.Errorf(`"expires": %w`, err)
			}
		case "metadata":
			if haveMD {
				return r, errors.New(`duplicate field "metadata"`)
			}
			haveMD = true
			if r.Metadata, err = parseMetadata(d); err != nil {
				return r, err
			}
		default:
			return r, fmt.Errorf("unknown field %.40q", key)
		}
	}
	if err := expectDelim(d, '}'); err != nil {
		return r, err
	}
	if _, err := d.Token(); err != io.EOF {
		return r, errors.New("data after the object")
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

func parseMetadata(d *json.Decoder) (map[string]string, error) {
	if err := expectDelim(d, '{'); err != nil {
		return nil, fmt.Errorf(`"metadata": %w`, err)
	}
	md := map[string]string{}
	for d.More() {
		k, err := stringToken(d, "metadata key")
		if err != nil {
			return nil, err
		}
		if _, dup := md[k]; dup {
			return nil, fmt.Errorf("duplicate metadata key %.40q", k)
		}
		if len(md) == MaxMetadata {
			return nil, fmt.Errorf("over %d metadata entries", MaxMetadata)
		}
		if md[k], err = stringToken(d, "metadata value"); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(d, '}'); err != nil {
		return nil, fmt.Errorf(`"metadata": %w`, err)
	}
	return md, nil
}

func expectDelim(d *json.Decoder, want json.Delim) error {
	t, err := d.Token()
	if err != nil {
		return fmt.Errorf("want %q: %w", rune(want), err)
	}
	if got, ok := t.(json.Delim); !ok || got != want {
		return fmt.Errorf("want %q, got %s", rune(want), describe(t))
	}
	return nil
}

func stringToken(d *json.Decoder, what string) (string, error) {
	t, err := d.Token()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", what, describe(t))
	}
	return s, nil
}

func describe(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", rune(t))
	case string:
		return "a string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("a %T", t)
	}
}
