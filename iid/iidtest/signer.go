// Package iidtest provides test doubles for package iid: a Signer that signs
// instance identity documents the way AWS does, with demo keys a verifier is
// told to trust, and a fake instance metadata service (IMDS) that serves them
// the way the real one does.
//
// Nothing here is for production: the keys are generated in memory and the
// fake serves anyone who asks.
package iidtest

import (
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 AWS signs /pkcs7 with DSA-SHA1; the fake does the same.
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/grpcutil/grpcutil/iid"
)

// Signer signs documents in the three forms IMDS serves, with its own demo
// keys: RSA-2048 for FormRSA2048, RSA-1024 for FormSignature (as AWS) and
// DSA L1024/N160 for FormPKCS7 (generated on first use; it takes a moment).
// It is safe for concurrent use.
type Signer struct {
	rsa2048 *rsa.PrivateKey
	rsa1024 *rsa.PrivateKey
	cert    *x509.Certificate

	dsaOnce sync.Once
	dsaKey  *dsa.PrivateKey
	dsaErr  error
}

// NewSigner generates a Signer's RSA keys and a self-signed certificate for
// the RSA-2048 key.
func NewSigner() (*Signer, error) {
	k2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("iidtest: %w", err)
	}
	k1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return nil, fmt.Errorf("iidtest: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("iidtest: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "iidtest demo signer", Organization: []string{"iidtest"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k2048.PublicKey, k2048)
	if err != nil {
		return nil, fmt.Errorf("iidtest: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("iidtest: %w", err)
	}
	return &Signer{rsa2048: k2048, rsa1024: k1024, cert: cert}, nil
}

// dsaParams are shared by every Signer: generating them is the slow part.
var dsaParams = sync.OnceValues(func() (*dsa.Parameters, error) {
	var p dsa.Parameters
	if err := dsa.GenerateParameters(&p, rand.Reader, dsa.L1024N160); err != nil {
		return nil, err
	}
	return &p, nil
})

func (s *Signer) dsa() (*dsa.PrivateKey, error) {
	s.dsaOnce.Do(func() {
		p, err := dsaParams()
		if err != nil {
			s.dsaErr = fmt.Errorf("iidtest: dsa parameters: %w", err)
			return
		}
		k := &dsa.PrivateKey{PublicKey: dsa.PublicKey{Parameters: *p}}
		if err := dsa.GenerateKey(k, rand.Reader); err != nil {
			s.dsaErr = fmt.Errorf("iidtest: dsa key: %w", err)
			return
		}
		s.dsaKey = k
	})
	return s.dsaKey, s.dsaErr
}

// Certificate returns the self-signed certificate of the RSA-2048 key.
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

// PublicKey returns the public key that verifies the form's signatures.
func (s *Signer) PublicKey(form iid.Form) (crypto.PublicKey, error) {
	switch form {
	case iid.FormRSA2048:
		return &s.rsa2048.PublicKey, nil
	case iid.FormSignature:
		return &s.rsa1024.PublicKey, nil
	case iid.FormPKCS7:
		k, err := s.dsa()
		if err != nil {
			return nil, err
		}
		return &k.PublicKey, nil
	}
	return nil, fmt.Errorf("iidtest: unknown form %q", form)
}

// Trust returns verifier options that make the Signer's keys the trusted
// keys for the given forms (all three if none) in region, in place of AWS's.
func (s *Signer) Trust(region string, forms ...iid.Form) ([]iid.VerifyOption, error) {
	if len(forms) == 0 {
		forms = []iid.Form{iid.FormRSA2048, iid.FormSignature, iid.FormPKCS7}
	}
	var opts []iid.VerifyOption
	for _, f := range forms {
		k, err := s.PublicKey(f)
		if err != nil {
			return nil, err
		}
		opts = append(opts, iid.WithPublicKeys(f, region, k))
	}
	return opts, nil
}

// Sign returns the form's signature of doc as IMDS serves it: base64 in
// 64-column lines, no trailing newline.
func (s *Signer) Sign(form iid.Form, doc []byte) ([]byte, error) {
	raw, err := s.SignRaw(form, doc)
	if err != nil {
		return nil, err
	}
	return Wrap64(raw), nil
}

// SignRaw is Sign without the base64: the raw signature or DER PKCS#7.
func (s *Signer) SignRaw(form iid.Form, doc []byte) ([]byte, error) {
	switch form {
	case iid.FormSignature:
		h := sha256.Sum256(doc)
		return rsa.SignPKCS1v15(rand.Reader, s.rsa1024, crypto.SHA256, h[:])
	case iid.FormRSA2048:
		return BuildPKCS7(doc, PKCS7Options{
			Digest:    crypto.SHA256,
			Sign:      func(h []byte) ([]byte, error) { return s.SignDigest(form, crypto.SHA256, h) },
			SigAlg:    OIDSHA256WithRSA,
			Protected: true,
			Cert:      s.cert.Raw,
		})
	case iid.FormPKCS7:
		return BuildPKCS7(doc, PKCS7Options{
			Digest: crypto.SHA1,
			Sign:   func(h []byte) ([]byte, error) { return s.SignDigest(form, crypto.SHA1, h) },
			SigAlg: OIDDSAWithSHA1,
		})
	}
	return nil, fmt.Errorf("iidtest: unknown form %q", form)
}

// Wrap64 base64-encodes b in 64-column lines with no trailing newline.
func Wrap64(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	for len(enc) > 64 {
		sb.WriteString(enc[:64])
		sb.WriteByte('\n')
		enc = enc[64:]
	}
	sb.WriteString(enc)
	return []byte(sb.String())
}

// Object identifiers for PKCS7Options.SigAlg.
var (
	OIDRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	OIDSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	OIDDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 3}

	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAlgProtection = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 52}
	oidSHA1          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// PKCS7Options shape a SignedData built by BuildPKCS7. Tests use the
// fields to build the malformed and misleading messages a verifier must
// refuse.
type PKCS7Options struct {
	Digest crypto.Hash // crypto.SHA1 or crypto.SHA256
	// Sign signs the digest of the DER signed attributes.
	Sign   func(digest []byte) ([]byte, error)
	SigAlg asn1.ObjectIdentifier
	// Protected adds a CMSAlgorithmProtection attribute.
	Protected bool
	// Cert, if set, is embedded in the certificates field (a verifier must
	// not trust it).
	Cert []byte
	// MessageDigest, if set, replaces the digest of the content in the
	// messageDigest attribute.
	MessageDigest []byte
	// Content, if set, is attached in place of the signed document (the
	// messageDigest still covers the document).
	Content []byte
	// ProtectionSigAlg, if set, is the signature algorithm named in the
	// CMSAlgorithmProtection attribute in place of SigAlg.
	ProtectionSigAlg asn1.ObjectIdentifier
	// ExtraAttributes are DER Attribute SEQUENCEs added to the signed
	// attributes.
	ExtraAttributes [][]byte
}

// Attribute returns the DER of a PKCS#7 Attribute with one value.
func Attribute(typ asn1.ObjectIdentifier, value any) ([]byte, error) {
	v, err := asn1.Marshal(value)
	if err != nil {
		return nil, err
	}
	set, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: v})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(attribute{Type: typ, Values: asn1.RawValue{FullBytes: set}})
}

// OIDMessageDigest is the messageDigest attribute type.
var OIDMessageDigest = oidMessageDigest

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

// BuildPKCS7 returns a DER PKCS#7 SignedData of doc laid out as AWS's:
// attached id-data content, one SignerInfo (version 1, issuer and serial),
// signed attributes contentType, signingTime, messageDigest and, if asked,
// CMSAlgorithmProtection.
func BuildPKCS7(doc []byte, o PKCS7Options) ([]byte, error) {
	digestOID := oidSHA256
	if o.Digest == crypto.SHA1 {
		digestOID = oidSHA1
	}
	md := o.MessageDigest
	if md == nil {
		if o.Digest == crypto.SHA1 {
			s := sha1.Sum(doc)
			md = s[:]
		} else {
			s := sha256.Sum256(doc)
			md = s[:]
		}
	}
	content := doc
	if o.Content != nil {
		content = o.Content
	}
	digestAlg := pkix.AlgorithmIdentifier{Algorithm: digestOID}
	sigAlg := pkix.AlgorithmIdentifier{Algorithm: o.SigAlg}
	val := func(v any) (asn1.RawValue, error) {
		b, err := asn1.Marshal(v)
		if err != nil {
			return asn1.RawValue{}, err
		}
		set, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: b})
		return asn1.RawValue{FullBytes: set}, err
	}
	var attrs []attribute
	add := func(t asn1.ObjectIdentifier, v any) error {
		rv, err := val(v)
		if err != nil {
			return err
		}
		attrs = append(attrs, attribute{Type: t, Values: rv})
		return nil
	}
	if err := add(oidContentType, oidData); err != nil {
		return nil, err
	}
	if err := add(oidSigningTime, time.Now().UTC().Truncate(time.Second)); err != nil {
		return nil, err
	}
	if err := add(oidMessageDigest, md); err != nil {
		return nil, err
	}
	if o.Protected {
		protAlg := sigAlg
		if o.ProtectionSigAlg != nil {
			protAlg = pkix.AlgorithmIdentifier{Algorithm: o.ProtectionSigAlg}
		}
		sigDER, err := asn1.Marshal(protAlg)
		if err != nil {
			return nil, err
		}
		sigDER[0] = 0xa1 // [1] IMPLICIT
		if err := add(oidAlgProtection, struct {
			D pkix.AlgorithmIdentifier
			S asn1.RawValue
		}{digestAlg, asn1.RawValue{FullBytes: sigDER}}); err != nil {
			return nil, err
		}
	}
	for _, x := range o.ExtraAttributes {
		attrs = append(attrs, attribute{})
		if _, err := asn1.Unmarshal(x, &attrs[len(attrs)-1]); err != nil {
			return nil, err
		}
	}
	set, err := asn1.Marshal(struct {
		A []attribute `asn1:"set"`
	}{attrs})
	if err != nil {
		return nil, err
	}
	// set is SEQUENCE { SET {...} }: take the SET, which is what is signed.
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(set, &outer); err != nil {
		return nil, err
	}
	signedSet := outer.Bytes
	h := o.Digest.New()
	h.Write(signedSet)
	sig, err := o.Sign(h.Sum(nil))
	if err != nil {
		return nil, err
	}
	implicit := append([]byte{0xa0}, signedSet[1:]...)

	type issuerAndSerial struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	issuer, _ := asn1.Marshal(pkix.Name{CommonName: "iidtest"}.ToRDNSequence())
	si := struct {
		Version   int
		SID       issuerAndSerial
		Digest    pkix.AlgorithmIdentifier
		Attrs     asn1.RawValue
		SigAlg    pkix.AlgorithmIdentifier
		Signature []byte
	}{1, issuerAndSerial{asn1.RawValue{FullBytes: issuer}, big.NewInt(1)}, digestAlg,
		asn1.RawValue{FullBytes: implicit}, sigAlg, sig}

	type encap struct {
		Type    asn1.ObjectIdentifier
		Content []byte `asn1:"explicit,tag:0"`
	}
	sd := struct {
		Version int
		Digests []pkix.AlgorithmIdentifier `asn1:"set"`
		Encap   encap
		Certs   asn1.RawValue `asn1:"optional,tag:0"`
		Signers []any         `asn1:"set"`
	}{Version: 1, Digests: []pkix.AlgorithmIdentifier{digestAlg}, Encap: encap{oidData, content}, Signers: []any{si}}
	if o.Cert != nil {
		sd.Certs = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: o.Cert}
	}
	sdDER, err := asn1.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue
	}{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sdDER}})
}

// SignDigest signs a digest (made with h) with the form's key: RSA PKCS#1
// v1.5 for FormRSA2048 and FormSignature, a DER Dss-Sig-Value for
// FormPKCS7. Tests use it with BuildPKCS7 to craft messages.
func (s *Signer) SignDigest(form iid.Form, h crypto.Hash, digest []byte) ([]byte, error) {
	switch form {
	case iid.FormRSA2048:
		return rsa.SignPKCS1v15(rand.Reader, s.rsa2048, h, digest)
	case iid.FormSignature:
		return rsa.SignPKCS1v15(rand.Reader, s.rsa1024, h, digest)
	case iid.FormPKCS7:
		k, err := s.dsa()
		if err != nil {
			return nil, err
		}
		r, ss, err := dsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		return asn1.Marshal(struct{ R, S *big.Int }{r, ss})
	}
	return nil, fmt.Errorf("iidtest: unknown form %q", form)
}
