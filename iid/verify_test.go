package iid

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

func vectorNamed(t testing.TB, name string) vector {
	t.Helper()
	good, _ := loadVectors(t)
	for _, v := range good {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no vector %s", name)
	return vector{}
}

func mustVerifier(t testing.TB, opts ...VerifyOption) *Verifier {
	t.Helper()
	v, err := NewVerifier(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// One vector of each form and encoding generation.
var tamperVectors = []string{
	"teleport-rsa2048-us-west-2",      // rsa2048, sha256WithRSA + CMSAlgorithmProtection
	"cloudinit-rsa2048-us-east-2",     // rsa2048, rsaEncryption, no protection
	"fullsailor-pkcs7-dsa-us-east-1",  // pkcs7, constructed indefinite eContent
	"chalk-pkcs7-dsa-us-east-1-2023",  // pkcs7, primitive eContent + protection
	"taskcluster-signature-us-west-2", // signature
}

func TestDefaultAcceptsOnlyRSA2048(t *testing.T) {
	good, _ := loadVectors(t)
	v := mustVerifier(t)
	for _, vec := range good {
		_, err := v.Verify(SignedDocument{vec.doc, vec.sig, vec.form})
		if vec.form == FormRSA2048 {
			if err != nil {
				t.Errorf("%s: %v", vec.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrFormNotAllowed) {
			t.Errorf("%s: got %v, want ErrFormNotAllowed", vec.name, err)
		}
		// Detection finds the form, and it is still refused.
		if _, err := VerifyDocumentAndSignature(vec.doc, vec.sig); !errors.Is(err, ErrFormNotAllowed) {
			t.Errorf("%s: detected: got %v, want ErrFormNotAllowed", vec.name, err)
		}
	}
}

// Every byte of the document, changed, makes verification fail.
func TestTamperDocumentEveryByte(t *testing.T) {
	v := mustVerifier(t, allForms)
	for _, name := range tamperVectors {
		vec := vectorNamed(t, name)
		bad := 0
		for i := range vec.doc {
			doc := bytes.Clone(vec.doc)
			doc[i] ^= 0x01
			_, err := v.Verify(SignedDocument{doc, vec.sig, vec.form})
			if err == nil {
				t.Fatalf("%s: flipping document byte %d still verifies", name, i)
			}
			if errors.Is(err, ErrBadSignature) {
				bad++
			}
		}
		// Most flips keep the JSON readable, so it is the signature check
		// that refuses them.
		if bad < len(vec.doc)/2 {
			t.Errorf("%s: only %d of %d flips reached the signature check", name, bad, len(vec.doc))
		}
	}
}

// Every byte of the (DER form of the) signature, changed, makes verification
// fail, except the signer identifier, which names a certificate the verifier
// does not use (trust is in the key for the region).
func TestTamperSignatureEveryByte(t *testing.T) {
	v := mustVerifier(t, allForms)
	for _, name := range tamperVectors {
		vec := vectorNamed(t, name)
		raw, err := decodeBase64(vec.sig)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := 0, 0
		if vec.form != FormSignature {
			if raw, err = berToDER(raw); err != nil {
				t.Fatal(err)
			}
			m, err := parsePKCS7(raw)
			if err != nil {
				t.Fatal(err)
			}
			lo = bytes.Index(raw, m.sid)
			hi = lo + len(m.sid)
			// The DER form verifies as it is.
			if _, err := v.Verify(SignedDocument{vec.doc, encode(raw), vec.form}); err != nil {
				t.Fatalf("%s: der form: %v", name, err)
			}
		}
		for i := range raw {
			for _, mask := range []byte{0x01, 0x80} {
				sig := bytes.Clone(raw)
				sig[i] ^= mask
				_, err := v.Verify(SignedDocument{vec.doc, encode(sig), vec.form})
				if err == nil && (i < lo || i >= hi) {
					t.Fatalf("%s: flipping signature byte %d (mask %#x) still verifies", name, i, mask)
				}
				if err != nil && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("%s: byte %d: got %v, want ErrBadSignature", name, i, err)
				}
			}
		}
	}
}

func encode(b []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(b)) }

func TestTruncatedAndExtendedSignature(t *testing.T) {
	v := mustVerifier(t, allForms)
	for _, name := range tamperVectors {
		vec := vectorNamed(t, name)
		raw, _ := decodeBase64(vec.sig)
		text := bytes.TrimSpace(vec.sig)
		cases := map[string][]byte{
			"empty":               {},
			"whitespace":          []byte(" \n\t\r\n"),
			"garbage":             []byte("not base64 at all!"),
			"one char short":      text[:len(text)-1],
			"four chars short":    text[:len(text)-4],
			"half":                text[:len(text)/2],
			"extra quad":          append(bytes.Clone(text), "AAAA"...),
			"extra pad":           append(bytes.Clone(text), "="...),
			"pem armor":           append([]byte("-----BEGIN PKCS7-----\n"), text...),
			"raw one byte short":  encode(raw[:len(raw)-1]),
			"raw one byte longer": encode(append(bytes.Clone(raw), 0)),
			"raw two zero bytes":  encode(append(bytes.Clone(raw), 0, 0)),
			"url alphabet":        []byte(base64.URLEncoding.EncodeToString(raw)),
			"unpadded":            []byte(base64.RawStdEncoding.EncodeToString(raw)),
		}
		for cname, sig := range cases {
			if cname == "unpadded" && len(raw)%3 == 0 {
				continue // nothing to pad
			}
			if cname == "url alphabet" && !bytes.ContainsAny(sig, "-_") {
				continue
			}
			_, err := v.Verify(SignedDocument{vec.doc, sig, vec.form})
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s/%s: got %v, want ErrBadSignature", name, cname, err)
			}
		}
	}
}

func TestBase64Wrapping(t *testing.T) {
	v := mustVerifier(t, allForms)
	for _, name := range tamperVectors {
		vec := vectorNamed(t, name)
		raw, _ := decodeBase64(vec.sig)
		enc := base64.StdEncoding.EncodeToString(raw)
		wrap := func(n int, sep string) []byte {
			var b strings.Builder
			for i := 0; i < len(enc); i += n {
				b.WriteString(enc[i:min(i+n, len(enc))])
				b.WriteString(sep)
			}
			return []byte(b.String())
		}
		for cname, sig := range map[string][]byte{
			"one line":           []byte(enc),
			"one line + newline": []byte(enc + "\n"),
			"64 columns":         wrap(64, "\n"),
			"76 columns CRLF":    wrap(76, "\r\n"),
			"1 column":           wrap(1, "\n"),
			"indented":           wrap(60, "\n\t  "),
		} {
			if _, err := v.Verify(SignedDocument{vec.doc, sig, vec.form}); err != nil {
				t.Errorf("%s/%s: %v", name, cname, err)
			}
		}
	}
}

func TestTrailingNewline(t *testing.T) {
	v := mustVerifier(t, allForms)
	for _, name := range tamperVectors {
		vec := vectorNamed(t, name)
		for _, suffix := range []string{"\n", "\r\n"} {
			d, err := v.Verify(SignedDocument{append(bytes.Clone(vec.doc), suffix...), vec.sig, vec.form})
			if err != nil {
				t.Fatalf("%s with %q: %v", name, suffix, err)
			}
			if !bytes.Equal(d.Raw, vec.doc) {
				t.Fatalf("%s: Raw kept the newline", name)
			}
		}
		for _, suffix := range []string{"\n\n", " ", "\t", " \n"} {
			if _, err := v.Verify(SignedDocument{append(bytes.Clone(vec.doc), suffix...), vec.sig, vec.form}); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%s with %q: got %v, want ErrBadSignature", name, suffix, err)
			}
		}
	}
}

// A valid signature of one document presented with another: the PKCS#7
// content differs from the document (identity substitution).
func TestSubstitution(t *testing.T) {
	good, _ := loadVectors(t)
	v := mustVerifier(t, allForms)
	for _, a := range good {
		for _, b := range good {
			if bytes.Equal(a.doc, b.doc) || a.form != FormRSA2048 && a.form != FormPKCS7 {
				continue
			}
			_, err := v.Verify(SignedDocument{b.doc, a.sig, a.form})
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownRegion) {
				t.Errorf("%s's signature with %s's document: got %v", a.name, b.name, err)
			}
			if b.region == a.region && !strings.Contains(err.Error(), "signed content differs") {
				t.Errorf("%s/%s: got %v, want a content mismatch", a.name, b.name, err)
			}
		}
	}
}

func TestWrongKeyOrRegion(t *testing.T) {
	vec := vectorNamed(t, "teleport-rsa2048-us-west-2")
	east := EmbeddedCertificates(FormRSA2048, "us-east-1")
	sigCert := EmbeddedCertificates(FormSignature, "us-west-2")
	if len(east) != 1 || len(sigCert) != 1 {
		t.Fatal("embedded certificates missing")
	}
	for name, opt := range map[string]VerifyOption{
		"another region's key":     WithCertificates(FormRSA2048, "us-west-2", east...),
		"region removed":           WithCertificates(FormRSA2048, "us-west-2"),
		"no embedded keys":         WithoutEmbeddedCertificates(),
		"key of the legacy form":   WithPublicKeys(FormRSA2048, "us-west-2", sigCert[0].PublicKey),
		"dsa key for rsa2048 form": WithPublicKeys(FormPKCS7, "us-west-2", EmbeddedCertificates(FormPKCS7, "us-east-1")[0].PublicKey),
	} {
		v, err := NewVerifier(opt)
		if name == "key of the legacy form" {
			// A 1024-bit key is refused for rsa2048 outright.
			if err == nil || !strings.Contains(err.Error(), "rsa key size") {
				t.Errorf("%s: got %v", name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = v.Verify(SignedDocument{vec.doc, vec.sig, FormRSA2048})
		if name == "dsa key for rsa2048 form" {
			// Keys are per form: replacing the pkcs7 key leaves rsa2048's.
			if err != nil {
				t.Errorf("%s: rsa2048 must still verify with its own key: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	// The document's region is what picks the key: change it and the
	// signature no longer matches (or the region is unknown).
	for _, region := range []string{"us-east-1", "eu-west-1", "ap-nowhere-9"} {
		doc := bytes.Replace(vec.doc, []byte(`"us-west-2"`), []byte(`"`+region+`"`), 1)
		_, err := mustVerifier(t).Verify(SignedDocument{doc, vec.sig, FormRSA2048})
		want := ErrBadSignature
		if region == "ap-nowhere-9" {
			want = ErrUnknownRegion
		}
		if !errors.Is(err, want) {
			t.Errorf("region %s: got %v, want %v", region, err, want)
		}
	}
}

func TestUnknownRegionFailsClosed(t *testing.T) {
	vec := vectorNamed(t, "istio-pkcs7-dsa-us-west-2")
	for _, region := range []string{"us-gov-west-1", "eusc-de-east-1", "xx-nowhere-1"} {
		// No DSA key is published for these partitions' /pkcs7.
		doc := bytes.Replace(vec.doc, []byte(`"us-west-2"`), []byte(`"`+region+`"`), 1)
		_, err := mustVerifier(t, allForms).Verify(SignedDocument{doc, vec.sig, FormPKCS7})
		if !errors.Is(err, ErrUnknownRegion) {
			t.Errorf("%s: got %v, want ErrUnknownRegion", region, err)
		}
	}
	// A region AWS opens later: the caller adds its key.
	doc := bytes.Replace(vec.doc, []byte(`"us-west-2"`), []byte(`"xx-nowhere-1"`), 1)
	v := mustVerifier(t, allForms, WithCertificates(FormPKCS7, "xx-nowhere-1", EmbeddedCertificates(FormPKCS7, "us-west-2")...))
	if _, err := v.Verify(SignedDocument{doc, vec.sig, FormPKCS7}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("added region: got %v, want the signature (not the region) to fail", err)
	}
}

func TestEmbeddedCertificates(t *testing.T) {
	rsa2048 := EmbeddedRegions(FormRSA2048)
	sig := EmbeddedRegions(FormSignature)
	p7 := EmbeddedRegions(FormPKCS7)
	if len(rsa2048) < 37 || len(sig) != len(rsa2048) {
		t.Fatalf("%d rsa2048 regions, %d signature regions", len(rsa2048), len(sig))
	}
	for _, r := range []string{"us-east-1", "cn-north-1", "us-gov-west-1", "eusc-de-east-1", "mx-central-1"} {
		if len(EmbeddedCertificates(FormRSA2048, r)) != 1 || len(EmbeddedCertificates(FormSignature, r)) != 1 {
			t.Errorf("%s: missing certificates", r)
		}
	}
	for _, r := range p7 {
		if p := Partition(r); p != "aws" && p != "aws-cn" {
			t.Errorf("pkcs7 key for %s (%s): none is published", r, p)
		}
	}
	// The 2014 default /signature certificate expired in 2024, yet its key is
	// the one the current us-east-1 certificate carries: keys are what count.
	b, err := os.ReadFile(filepath.Join("testdata", "rsa-signature-default-2014.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	old, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if old.NotAfter.After(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("expected an expired certificate, NotAfter %v", old.NotAfter)
	}
	vec := vectorNamed(t, "chalk-signature-us-east-1-2023")
	v := mustVerifier(t, WithAllowedForms(FormSignature), WithCertificates(FormSignature, "us-east-1", old))
	if _, err := v.Verify(SignedDocument{vec.doc, vec.sig, FormSignature}); err != nil {
		t.Fatalf("expired certificate with the same key: %v", err)
	}
	// 1024-bit keys verify without any GODEBUG setting.
	if n := old.PublicKey.(*rsa.PublicKey).N.BitLen(); n != 1024 {
		t.Fatalf("key has %d bits", n)
	}
}

func TestPolicy(t *testing.T) {
	vec := vectorNamed(t, "teleport-rsa2048-us-west-2") // i-078517ca8a70a1dde, 278576220453
	d, err := mustVerifier(t).Verify(SignedDocument{vec.doc, vec.sig, FormRSA2048})
	if err != nil {
		t.Fatal(err)
	}
	at := func(dt time.Duration) func() time.Time { return func() time.Time { return d.PendingTime.Add(dt) } }
	tests := []struct {
		name string
		opts []VerifyOption
		ok   bool
	}{
		{"account allowed", []VerifyOption{WithAllowedAccounts("111111111111", d.AccountID)}, true},
		{"account refused", []VerifyOption{WithAllowedAccounts("111111111111")}, false},
		{"region allowed", []VerifyOption{WithAllowedRegions("us-west-2")}, true},
		{"region refused", []VerifyOption{WithAllowedRegions("us-east-1")}, false},
		{"instance allowed", []VerifyOption{WithAllowedInstanceIDs(d.InstanceID)}, true},
		{"instance refused", []VerifyOption{WithAllowedInstanceIDs("i-00000000000000000")}, false},
		{"young enough", []VerifyOption{WithMaxAge(time.Hour), WithTime(at(59 * time.Minute))}, true},
		{"too old", []VerifyOption{WithMaxAge(time.Hour), WithTime(at(61 * time.Minute))}, false},
		{"check passes", []VerifyOption{WithCheck(func(d *Document) error { return nil })}, true},
		{"check fails", []VerifyOption{WithCheck(func(d *Document) error { return errors.New("no") })}, false},
	}
	for _, tc := range tests {
		_, err := mustVerifier(t, tc.opts...).Verify(SignedDocument{vec.doc, vec.sig, FormRSA2048})
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: got %v, want ErrPolicy", tc.name, err)
		}
	}
	if d.AccountID != "278576220453" || d.InstanceID != "i-078517ca8a70a1dde" || d.Region != "us-west-2" ||
		d.AvailabilityZone != "us-west-2a" || d.PendingTime.IsZero() || d.ImageID == "" || d.InstanceType == "" ||
		d.Architecture != "x86_64" || d.PrivateIP == "" || d.Version == "" {
		t.Errorf("fields: %+v", d)
	}
}

func TestBadOptions(t *testing.T) {
	for name, opt := range map[string]VerifyOption{
		"unknown form":   WithAllowedForms("dsa"),
		"bad region":     WithPublicKeys(FormRSA2048, "US East", &rsa.PublicKey{}),
		"nil key":        WithCertificates(FormRSA2048, "us-east-1", nil),
		"nil clock":      WithTime(nil),
		"nil check":      WithCheck(nil),
		"negative age":   WithMaxAge(-time.Second),
		"no accounts":    WithAllowedAccounts(), // not "allow all"
		"no regions":     WithAllowedRegions(),
		"no instances":   WithAllowedInstanceIDs([]string{}...),
		"wrong key type": WithPublicKeys(FormRSA2048, "us-east-1", "key"),
	} {
		_, err := NewVerifier(opt)
		if err == nil || !strings.HasPrefix(err.Error(), "iid: ") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestOversize(t *testing.T) {
	vec := vectorNamed(t, "teleport-rsa2048-us-west-2")
	v := mustVerifier(t)
	big := append(bytes.Clone(vec.doc), bytes.Repeat([]byte(" "), MaxDocumentSize)...)
	if _, err := v.Verify(SignedDocument{big, vec.sig, FormRSA2048}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("document: got %v", err)
	}
	bigSig := append(bytes.Clone(vec.sig), bytes.Repeat([]byte("\n"), MaxSignatureSize)...)
	if _, err := v.Verify(SignedDocument{vec.doc, bigSig, FormRSA2048}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("signature: got %v", err)
	}
}

// smallstep/pkcs7, an independent implementation, agrees: it verifies the
// real rsa2048 vectors, and what it signs verifies here.
func TestCrossCheckSmallstep(t *testing.T) {
	for _, name := range []string{"teleport-rsa2048-us-west-2", "cloudinit-rsa2048-us-east-2", "teleport-rsa2048-us-west-1"} {
		vec := vectorNamed(t, name)
		raw, _ := decodeBase64(vec.sig)
		p7, err := pkcs7.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		p7.Certificates = EmbeddedCertificates(FormRSA2048, vec.region)
		if err := p7.Verify(); err != nil {
			t.Fatalf("%s: smallstep: %v", name, err)
		}
		if !bytes.Equal(p7.Content, vec.doc) {
			t.Fatalf("%s: smallstep content differs", name)
		}
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	doc := vectorNamed(t, "teleport-rsa2048-us-west-2").doc
	sd, err := pkcs7.NewSignedData(doc)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	out, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	v := mustVerifier(t, WithPublicKeys(FormRSA2048, "us-west-2", crypto.PublicKey(&key.PublicKey)))
	if _, err := v.Verify(SignedDocument{doc, encode(out), FormRSA2048}); err != nil {
		t.Fatalf("smallstep-signed: %v", err)
	}
	// The same message with AWS's key: the certificate inside it is not
	// trusted.
	if _, err := mustVerifier(t).Verify(SignedDocument{doc, encode(out), FormRSA2048}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("self-signed message with embedded cert: got %v", err)
	}
}

func TestVerifierConcurrent(t *testing.T) {
	good, _ := loadVectors(t)
	v := mustVerifier(t, allForms)
	errc := make(chan error, 4*len(good))
	for range 4 {
		for _, vec := range good {
			go func() {
				_, err := v.Verify(SignedDocument{vec.doc, vec.sig, vec.form})
				errc <- err
			}()
		}
	}
	for range 4 * len(good) {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}
