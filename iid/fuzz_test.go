package iid

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func addVectorSeeds(f *testing.F, add func(v vector)) {
	good, neg := loadVectors(f)
	for _, v := range append(good, neg...) {
		add(v)
	}
}

func FuzzParseDocument(f *testing.F) {
	addVectorSeeds(f, func(v vector) { f.Add(v.doc) })
	f.Add([]byte(`{"accountId":"123456789012","instanceId":"i-0123456789abcdef0","region":"us-east-1","pendingTime":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"region":"us-east-1"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDocument(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "iid: ") {
				t.Fatalf("unprefixed error %v", err)
			}
			return
		}
		if !accountRE.MatchString(d.AccountID) || !instanceRE.MatchString(d.InstanceID) ||
			!regionRE.MatchString(d.Region) || d.PendingTime.IsZero() || !bytes.Equal(d.Raw, b) {
			t.Fatalf("accepted %+v", d)
		}
		r, err := peekRegion(b)
		if err != nil || r != d.Region {
			t.Fatalf("peekRegion %q %v, document region %q", r, err, d.Region)
		}
	})
}

func FuzzBER(f *testing.F) {
	addVectorSeeds(f, func(v vector) {
		if raw, err := decodeBase64(v.sig); err == nil && v.form != FormSignature {
			f.Add(raw)
		}
	})
	f.Add([]byte{0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0x41, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		der, err := berToDER(b)
		if err != nil {
			return
		}
		// DER is a fixed point of the conversion.
		again, err := berToDER(der)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("berToDER not idempotent: %v", err)
		}
		if len(der) > len(b)+8 {
			t.Fatalf("der %d bytes from %d bytes of ber", len(der), len(b))
		}
	})
}

// FuzzPKCS7 runs the PKCS#7 parser and both PKCS#7 verification paths, with
// AWS's real keys, on arbitrary messages.
func FuzzPKCS7(f *testing.F) {
	addVectorSeeds(f, func(v vector) {
		if raw, err := decodeBase64(v.sig); err == nil && v.form != FormSignature {
			f.Add(raw, v.doc)
		}
	})
	e, err := loadEmbedded()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw, doc []byte) {
		m, perr := parsePKCS7(raw)
		for _, form := range []Form{FormRSA2048, FormPKCS7} {
			for _, region := range []string{"us-east-1", "us-west-2"} {
				err := verifyPKCS7(form, e.trust[trustKey{form, region}], doc, raw)
				if err == nil {
					// Only real AWS messages verify, and then only with the
					// very content they carry.
					if perr != nil || !bytes.Equal(m.content, doc) {
						t.Fatalf("verified: parse error %v", perr)
					}
					continue
				}
				if !errors.Is(err, ErrBadSignature) || !strings.HasPrefix(err.Error(), "iid: ") {
					t.Fatalf("error %v", err)
				}
			}
		}
	})
}

func FuzzBase64(f *testing.F) {
	addVectorSeeds(f, func(v vector) { f.Add(v.sig) })
	f.Add([]byte("QUJD\r\nREVG\n"))
	f.Add([]byte("===="))
	f.Fuzz(func(t *testing.T, text []byte) {
		raw, err := decodeBase64(text)
		if err == nil {
			// Whatever decodes re-encodes to the same text minus whitespace.
			var clean []byte
			for _, c := range text {
				if !bytes.ContainsRune([]byte(" \t\r\n"), rune(c)) {
					clean = append(clean, c)
				}
			}
			if base64.StdEncoding.EncodeToString(raw) != string(clean) {
				t.Fatalf("decoded %q from %q", raw, text)
			}
		}
		// And any bytes, wrapped as IMDS does, decode back.
		enc := []byte(base64.StdEncoding.EncodeToString(text))
		var wrapped []byte
		for i := 0; i < len(enc); i += 64 {
			wrapped = append(append(wrapped, enc[i:min(i+64, len(enc))]...), '\n')
		}
		if len(text) == 0 {
			return
		}
		got, err := decodeBase64(wrapped)
		if err != nil && len(wrapped) <= MaxSignatureSize {
			t.Fatal(err)
		}
		if err == nil && !bytes.Equal(got, text) {
			t.Fatalf("round trip of %q gave %q", text, got)
		}
	})
}

// FuzzVerify runs the whole verifier, every form allowed, on arbitrary
// inputs.
func FuzzVerify(f *testing.F) {
	addVectorSeeds(f, func(v vector) { f.Add(v.doc, v.sig, string(v.form)) })
	v, err := NewVerifier(allForms)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := loadVectors(f)
	f.Fuzz(func(t *testing.T, doc, sig []byte, form string) {
		d, err := v.Verify(SignedDocument{doc, sig, Form(form)})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "iid: ") {
				t.Fatalf("unprefixed error %v", err)
			}
			return
		}
		// Only the real vectors' documents can verify.
		for _, vec := range good {
			if bytes.Equal(d.Raw, vec.doc) {
				return
			}
		}
		t.Fatalf("verified a document that is not a vector: %q", d.Raw)
	})
}

func FuzzHandshakeMessage(f *testing.F) {
	addVectorSeeds(f, func(v vector) {
		if b, err := marshalSigned(&SignedDocument{v.doc, v.sig, v.form}); err == nil {
			f.Add(b)
		}
	})
	f.Add([]byte{1, 1, 0, 0, 0, 1, 'x', 0, 0, 0, 1, 'y'})
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := unmarshalSigned(b)
		if err != nil {
			return
		}
		again, err := marshalSigned(sd)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
