package iid

import (
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 the baseline is the bare DSA verification.
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"testing"
)

// BenchmarkVerify compares, for each form, the whole Verifier.Verify (base64,
// BER, PKCS#7 parse, digests, signature, JSON, policy) with its baseline: the
// bare public-key operation on precomputed inputs.
func BenchmarkVerify(b *testing.B) {
	v, err := NewVerifier(allForms, WithAllowedRegions("us-west-2", "us-east-1"))
	if err != nil {
		b.Fatal(err)
	}
	e, _ := loadEmbedded()
	for _, name := range []string{"teleport-rsa2048-us-west-2", "taskcluster-signature-us-west-2", "fullsailor-pkcs7-dsa-us-east-1"} {
		vec := vectorNamed(b, name)
		sd := SignedDocument{vec.doc, vec.sig, vec.form}
		raw, _ := decodeBase64(vec.sig)
		var bare func() bool
		switch vec.form {
		case FormSignature:
			pub := e.trust[trustKey{FormSignature, vec.region}][0].(*rsa.PublicKey)
			h := sha256.Sum256(vec.doc)
			bare = func() bool { return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], raw) == nil }
		default:
			m, err := parsePKCS7(raw)
			if err != nil {
				b.Fatal(err)
			}
			switch pub := e.trust[trustKey{vec.form, vec.region}][0].(type) {
			case *rsa.PublicKey:
				h := sha256.Sum256(m.signedAttrs)
				bare = func() bool { return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], m.signature) == nil }
			case *dsa.PublicKey:
				var rs struct{ R, S *big.Int }
				if _, err := asn1.Unmarshal(m.signature, &rs); err != nil {
					b.Fatal(err)
				}
				h := digest(crypto.SHA1, m.signedAttrs)
				bare = func() bool { return dsa.Verify(pub, h, rs.R, rs.S) }
			}
		}
		b.Run(string(vec.form)+"/Bare", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !bare() {
					b.Fatal("bare verification failed")
				}
			}
		})
		b.Run(string(vec.form)+"/Verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(sd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
