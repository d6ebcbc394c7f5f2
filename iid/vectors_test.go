package iid

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vector is one directory of testdata/vectors: real AWS-signed data.
type vector struct {
	name   string
	form   Form
	doc    []byte
	sig    []byte
	region string
	// negatives: other documents in the folder that must not verify with sig,
	// and other signatures that must not verify the document.
	badDocs map[string][]byte
	badSigs map[string][]byte
}

func loadVectors(t testing.TB) (good, negative []vector) {
	t.Helper()
	dirs, err := os.ReadDir(filepath.Join("testdata", "vectors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join("testdata", "vectors", d.Name())
		v := vector{name: d.Name(), badDocs: map[string][]byte{}, badSigs: map[string][]byte{}}
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			switch n := f.Name(); {
			case n == "document.json":
				v.doc = b
			case n == "rsa2048" || n == "signature" || n == "pkcs7":
				v.form, v.sig = Form(n), b
			case strings.HasPrefix(n, "document."):
				v.badDocs[n] = b
			case strings.HasPrefix(n, "signature."):
				v.badSigs[n] = b
			}
		}
		if v.doc == nil || v.sig == nil {
			t.Fatalf("%s: incomplete vector", dir)
		}
		if strings.HasPrefix(d.Name(), "NEGATIVE") {
			negative = append(negative, v)
			continue
		}
		r, err := peekRegion(v.doc)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		v.region = r
		good = append(good, v)
	}
	if len(good) < 19 || len(negative) < 1 {
		t.Fatalf("found %d good and %d negative vectors", len(good), len(negative))
	}
	return good, negative
}

var allForms = WithAllowedForms(FormRSA2048, FormSignature, FormPKCS7)

func TestVectorsVerify(t *testing.T) {
	good, _ := loadVectors(t)
	v, err := NewVerifier(allForms)
	if err != nil {
		t.Fatal(err)
	}
	for _, vec := range good {
		t.Run(vec.name, func(t *testing.T) {
			for _, form := range []Form{vec.form, ""} {
				d, err := v.Verify(SignedDocument{Document: vec.doc, Signature: vec.sig, Form: form})
				if err != nil {
					t.Fatalf("form %q: %v", form, err)
				}
				if d.Form != vec.form || d.Region != vec.region || string(d.Raw) != string(vec.doc) {
					t.Fatalf("form %q: got %+v", form, d)
				}
				if d.PendingTime.Before(time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)) {
					t.Fatalf("pendingTime %v", d.PendingTime)
				}
			}
		})
	}
}

func TestVectorsNegative(t *testing.T) {
	good, negative := loadVectors(t)
	v, err := NewVerifier(allForms)
	if err != nil {
		t.Fatal(err)
	}
	e, err := loadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, vec := range negative {
		// Its (tampered) JSON does not even parse, so Verify refuses it
		// before looking up a key...
		_, err := v.Verify(SignedDocument{Document: vec.doc, Signature: vec.sig, Form: vec.form})
		if err == nil {
			t.Errorf("%s verified", vec.name)
		}
		// ...and the PKCS#7 check itself, with the key that signed it, must
		// catch that the DSA signature is valid but messageDigest is not the
		// digest of the content.
		raw, err := decodeBase64(vec.sig)
		if err != nil {
			t.Fatal(err)
		}
		err = verifyPKCS7(vec.form, e.trust[trustKey{FormPKCS7, "us-east-1"}], vec.doc, raw)
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "message digest does not match") {
			t.Errorf("%s: got %v, want a message digest mismatch", vec.name, err)
		}
	}
	n := 0
	for _, vec := range good {
		for name, doc := range vec.badDocs {
			n++
			_, err := v.Verify(SignedDocument{Document: doc, Signature: vec.sig, Form: vec.form})
			if err == nil {
				t.Errorf("%s/%s verified", vec.name, name)
			}
		}
		for name, sig := range vec.badSigs {
			n++
			_, err := v.Verify(SignedDocument{Document: vec.doc, Signature: sig, Form: vec.form})
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s/%s: got %v, want ErrBadSignature", vec.name, name, err)
			}
		}
	}
	if n < 4 {
		t.Fatalf("only %d negative inputs found", n)
	}
}
