package iid_test

import (
	"bytes"
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 AWS signs /pkcs7 with DSA-SHA1.
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/iid/iidtest"
)

// Messages crafted with the trusted demo keys that a strict verifier must
// still refuse, and the control that the same builder's honest output
// verifies.
func TestCraftedPKCS7(t *testing.T) {
	f := newFixture(t)
	s := f.signer
	v, err := iid.NewVerifier(append(f.trust, iid.WithAllowedForms(iid.FormRSA2048, iid.FormPKCS7))...)
	if err != nil {
		t.Fatal(err)
	}
	rsaSign := func(h []byte) ([]byte, error) { return s.SignDigest(iid.FormRSA2048, crypto.SHA256, h) }
	rsaSHA1 := func(h []byte) ([]byte, error) { return s.SignDigest(iid.FormRSA2048, crypto.SHA1, h) }
	dsaSign := func(h []byte) ([]byte, error) { return s.SignDigest(iid.FormPKCS7, crypto.SHA1, h) }
	dsaSHA256 := func(h []byte) ([]byte, error) { return s.SignDigest(iid.FormPKCS7, crypto.SHA256, h[:20]) }
	other := bytes.Replace(demoDoc, []byte("i-0123456789abcdef0"), []byte("i-0fedcba9876543210"), 1)
	otherSum := sha256.Sum256(other)
	dupDigest, err := iidtest.Attribute(iidtest.OIDMessageDigest, func() []byte { h := sha256.Sum256(demoDoc); return h[:] }())
	if err != nil {
		t.Fatal(err)
	}
	extraAttr, err := iidtest.Attribute(asn1.ObjectIdentifier{1, 2, 3, 4}, "hello")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		form    iid.Form
		o       iidtest.PKCS7Options
		wantErr string // "" means it must verify
	}{
		{"honest rsa2048", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA, Protected: true}, ""},
		{"honest rsa2048, rsaEncryption", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDRSAEncryption}, ""},
		{"honest pkcs7", iid.FormPKCS7, iidtest.PKCS7Options{Digest: crypto.SHA1, Sign: dsaSign, SigAlg: iidtest.OIDDSAWithSHA1}, ""},
		{"unknown signed attribute is covered by the signature", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA, ExtraAttributes: [][]byte{extraAttr}}, ""},
		{"content differs from messageDigest", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA, Content: other}, "signed content differs"},
		{"messageDigest of another document", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA, MessageDigest: otherSum[:]}, "message digest does not match"},
		{"messageDigest twice", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA, ExtraAttributes: [][]byte{dupDigest}}, "appears twice"},
		{"protection names another algorithm", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA, Protected: true, ProtectionSigAlg: iidtest.OIDRSAEncryption}, "algorithm-protection"},
		{"rsa2048 with sha1", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA1, Sign: rsaSHA1, SigAlg: iidtest.OIDRSAEncryption}, "digest algorithm"},
		{"dsa on the rsa2048 form", iid.FormRSA2048, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: dsaSHA256, SigAlg: iidtest.OIDDSAWithSHA1}, "not allowed"},
		{"dsa with sha256", iid.FormPKCS7, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: dsaSHA256, SigAlg: iidtest.OIDDSAWithSHA1}, "not allowed"},
		{"rsa claimed on the pkcs7 form, dsa key trusted", iid.FormPKCS7, iidtest.PKCS7Options{Digest: crypto.SHA256, Sign: rsaSign, SigAlg: iidtest.OIDSHA256WithRSA}, "no key of the signature's type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := iidtest.BuildPKCS7(demoDoc, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			d, err := v.Verify(iid.SignedDocument{Document: demoDoc, Signature: iidtest.Wrap64(der), Form: tc.form})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d.InstanceID != "i-0123456789abcdef0" {
					t.Fatalf("got %+v", d)
				}
				return
			}
			if !errors.Is(err, iid.ErrBadSignature) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want ErrBadSignature with %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "iid: ") {
				t.Fatalf("error not package-prefixed: %v", err)
			}
		})
	}
	// Substitution the other way round: the PKCS#7 of one document presented
	// with another whose region is the same.
	der, err := s.SignRaw(iid.FormRSA2048, other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(iid.SignedDocument{Document: demoDoc, Signature: iidtest.Wrap64(der), Form: iid.FormRSA2048})
	if !errors.Is(err, iid.ErrBadSignature) || !strings.Contains(err.Error(), "signed content differs") {
		t.Fatalf("substituted: got %v", err)
	}
}

// The raw /signature form: another key, another document, another hash.
func TestCraftedRawSignature(t *testing.T) {
	f := newFixture(t)
	v, err := iid.NewVerifier(append(f.trust, iid.WithAllowedForms(iid.FormSignature))...)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(demoDoc)
	good, err := f.signer.SignDigest(iid.FormSignature, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, _ := f.signer.SignDigest(iid.FormRSA2048, crypto.SHA256, h[:])
	h1 := sha256.Sum256(append(bytes.Clone(demoDoc), ' '))
	wrongDoc, _ := f.signer.SignDigest(iid.FormSignature, crypto.SHA256, h1[:])
	for name, sig := range map[string][]byte{"good": good, "wrong key": wrongKey, "wrong document": wrongDoc} {
		_, err := v.Verify(iid.SignedDocument{Document: demoDoc, Signature: iidtest.Wrap64(sig), Form: iid.FormSignature})
		if (name == "good") != (err == nil) {
			t.Errorf("%s: got %v", name, err)
		}
		if err != nil && !errors.Is(err, iid.ErrBadSignature) {
			t.Errorf("%s: got %v, want ErrBadSignature", name, err)
		}
	}
}

// A degenerate DSA key (g = y = 1) would make every signature with r = 1
// verify: the verifier refuses such a key when it is configured.
func TestDegenerateDSAKeyRefused(t *testing.T) {
	real := iid.EmbeddedCertificates(iid.FormPKCS7, "us-east-1")[0].PublicKey.(*dsa.PublicKey)
	one := big.NewInt(1)
	for name, key := range map[string]*dsa.PublicKey{
		"g = y = 1": {Parameters: dsa.Parameters{P: real.P, Q: real.Q, G: one}, Y: one},
		"g = p":     {Parameters: dsa.Parameters{P: real.P, Q: real.Q, G: real.P}, Y: real.Y},
		"y = 0":     {Parameters: real.Parameters, Y: new(big.Int)},
		"y = p - 1": {Parameters: real.Parameters, Y: new(big.Int).Sub(real.P, one)},
	} {
		v, err := iid.NewVerifier(iid.WithAllowedForms(iid.FormPKCS7), iid.WithPublicKeys(iid.FormPKCS7, "us-east-1", key))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "iid: WithPublicKeys: ") {
				t.Errorf("%s: error %v", name, err)
			}
			continue
		}
		forged, err := iidtest.BuildPKCS7(demoDoc, iidtest.PKCS7Options{
			Digest: crypto.SHA1, SigAlg: iidtest.OIDDSAWithSHA1,
			Sign: func([]byte) ([]byte, error) { return asn1.Marshal(struct{ R, S *big.Int }{one, one}) },
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(iid.SignedDocument{Document: demoDoc, Signature: iidtest.Wrap64(forged), Form: iid.FormPKCS7})
		t.Errorf("%s: key accepted (a forged r = s = 1 signature: %v)", name, err)
	}
}
