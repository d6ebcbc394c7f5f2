package iid

import (
	"bytes"
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 AWS signs /pkcs7 with DSA-SHA1; crypto/x509 no longer verifies it, so it is done here.
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// VerifyOption configures a Verifier.
type VerifyOption interface {
	applyVerify(*verifyConfig) error
}

type verifyOptionFunc func(*verifyConfig) error

func (f verifyOptionFunc) applyVerify(c *verifyConfig) error { return f(c) }

type verifyConfig struct {
	trust     trust
	forms     []Form
	accounts  []string
	regions   []string
	instances []string
	maxAge    time.Duration
	now       func() time.Time
	checks    []func(*Document) error
}

// WithAllowedForms sets the signature forms the verifier accepts, replacing
// the default of FormRSA2048 alone. The legacy forms FormSignature (RSA-1024)
// and FormPKCS7 (DSA-SHA1) are accepted only when named here.
func WithAllowedForms(forms ...Form) VerifyOption {
	return verifyOptionFunc(func(c *verifyConfig) error {
		for _, f := range forms {
			if !f.valid() {
				return fmt.Errorf("iid: WithAllowedForms: unknown form %q", f)
			}
		}
		c.forms = slices.Clone(forms)
		return nil
	})
}

// WithCertificates makes the public keys of certs the only trusted keys for
// signatures of form from region, replacing the embedded ones (or adding a
// region the package does not know). Only the keys are used: the
// certificates' validity dates, names and issuers are ignored, as AWS
// reissues its certificates with the same keys. To add a key next to the
// embedded one, pass EmbeddedCertificates(form, region) too. With no certs,
// the region is removed for that form.
func WithCertificates(form Form, region string, certs ...*x509.Certificate) VerifyOption {
	keys := make([]crypto.PublicKey, 0, len(certs))
	for _, c := range certs {
		if c == nil {
			keys = append(keys, nil)
			continue
		}
		keys = append(keys, c.PublicKey)
	}
	return WithPublicKeys(form, region, keys...)
}

// WithPublicKeys is WithCertificates with bare public keys: *rsa.PublicKey
// for FormRSA2048 and FormSignature, *dsa.PublicKey (or *rsa.PublicKey, as
// AWS lists for China) for FormPKCS7.
func WithPublicKeys(form Form, region string, keys ...crypto.PublicKey) VerifyOption {
	keys = slices.Clone(keys)
	return verifyOptionFunc(func(c *verifyConfig) error {
		if !form.valid() {
			return fmt.Errorf("iid: WithPublicKeys: unknown form %q", form)
		}
		if !regionRE.MatchString(region) {
			return fmt.Errorf("iid: WithPublicKeys: %q is not a region name", region)
		}
		for _, k := range keys {
			if err := checkKey(form, k); err != nil {
				return fmt.Errorf("iid: WithPublicKeys: %s %s: %w", form, region, err)
			}
		}
		k := trustKey{form, region}
		if len(keys) == 0 {
			delete(c.trust, k)
		} else {
			c.trust[k] = keys
		}
		return nil
	})
}

// WithoutEmbeddedCertificates starts the verifier with no trusted keys at
// all; only keys given with WithCertificates or WithPublicKeys are trusted.
// Options apply in order, so give it first.
func WithoutEmbeddedCertificates() VerifyOption {
	return verifyOptionFunc(func(c *verifyConfig) error {
		c.trust = trust{}
		return nil
	})
}

// WithAllowedAccounts accepts only documents of these AWS account ids. An
// empty list is an error from NewVerifier, not "any account": leave the
// option out to accept every account.
func WithAllowedAccounts(ids ...string) VerifyOption {
	return allowList("WithAllowedAccounts", "account ids", ids, func(c *verifyConfig) *[]string { return &c.accounts })
}

// WithAllowedRegions accepts only documents from these regions. An empty
// list is an error from NewVerifier, not "any region".
func WithAllowedRegions(regions ...string) VerifyOption {
	return allowList("WithAllowedRegions", "regions", regions, func(c *verifyConfig) *[]string { return &c.regions })
}

// WithAllowedInstanceIDs accepts only documents of these instance ids. An
// empty list is an error from NewVerifier, not "any instance".
func WithAllowedInstanceIDs(ids ...string) VerifyOption {
	return allowList("WithAllowedInstanceIDs", "instance ids", ids, func(c *verifyConfig) *[]string { return &c.instances })
}

// allowList sets an allow list. An empty one fails: the policy treats an
// unset list as "allow all", so an empty list (say, from an empty setting)
// must not silently become that.
func allowList(name, what string, vals []string, field func(*verifyConfig) *[]string) VerifyOption {
	vals = slices.Clone(vals)
	return verifyOptionFunc(func(c *verifyConfig) error {
		if len(vals) == 0 {
			return fmt.Errorf("iid: %s: no %s given (leave the option out to allow all)", name, what)
		}
		*field(c) = vals
		return nil
	})
}

// WithMaxAge refuses documents whose pendingTime (when the instance last
// started) is more than d before now. It limits how long a leaked document
// stays usable only for instances that are restarted; see the package doc.
func WithMaxAge(d time.Duration) VerifyOption {
	return verifyOptionFunc(func(c *verifyConfig) error {
		if d <= 0 {
			return fmt.Errorf("iid: WithMaxAge: %v is not positive", d)
		}
		c.maxAge = d
		return nil
	})
}

// WithTime sets the clock WithMaxAge measures against (time.Now by
// default).
func WithTime(now func() time.Time) VerifyOption {
	return verifyOptionFunc(func(c *verifyConfig) error {
		if now == nil {
			return errors.New("iid: WithTime: nil clock")
		}
		c.now = now
		return nil
	})
}

// WithCheck adds the caller's own check, run on every verified document that
// passed the other policy options. An error refuses the document; it is
// wrapped so that it matches ErrPolicy.
func WithCheck(check func(*Document) error) VerifyOption {
	return verifyOptionFunc(func(c *verifyConfig) error {
		if check == nil {
			return errors.New("iid: WithCheck: nil check")
		}
		c.checks = append(c.checks, check)
		return nil
	})
}

// Verifier verifies instance identity documents against AWS's public keys
// and applies a policy. It is safe for concurrent use.
type Verifier struct {
	c verifyConfig
}

// NewVerifier returns a Verifier that trusts the embedded AWS keys (unless
// told otherwise) and accepts FormRSA2048 signatures (unless told
// otherwise), with the given policy.
func NewVerifier(opts ...VerifyOption) (*Verifier, error) {
	e, err := loadEmbedded()
	if err != nil {
		return nil, err
	}
	c := verifyConfig{
		trust: e.trust.clone(),
		forms: []Form{FormRSA2048},
		now:   time.Now,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyVerify(&c); err != nil {
			return nil, err
		}
	}
	return &Verifier{c: c}, nil
}

// VerifyDocumentAndSignature verifies a document and a signature of the
// form it detects (see DetectForm) with a Verifier made from opts, and
// returns the verified Document.
func VerifyDocumentAndSignature(doc, sig []byte, opts ...VerifyOption) (*Document, error) {
	v, err := NewVerifier(opts...)
	if err != nil {
		return nil, err
	}
	return v.Verify(SignedDocument{Document: doc, Signature: sig})
}

// DetectForm tells the form of a signature from its content: a PKCS#7
// signed with RSA is FormRSA2048, with DSA FormPKCS7; anything else is taken
// as FormSignature. (The China /pkcs7, which AWS lists with an RSA key, is
// detected as FormRSA2048; give its form explicitly.)
func DetectForm(sig []byte) Form {
	raw, err := decodeBase64(sig)
	if err != nil {
		return FormSignature
	}
	m, err := parsePKCS7(raw)
	if err != nil {
		return FormSignature
	}
	if m.sigAlg.oid.Equal(oidDSA) || m.sigAlg.oid.Equal(oidDSAWithSHA1) {
		return FormPKCS7
	}
	return FormRSA2048
}

// Verify checks sd's signature under the key trusted for its form and for
// the region the document names, checks that the signature covers exactly
// sd.Document, parses the verified bytes and applies the policy. An empty
// sd.Form is detected with DetectForm. One trailing newline on the document
// is dropped first (see SignedDocument).
func (v *Verifier) Verify(sd SignedDocument) (*Document, error) {
	form := sd.Form
	if form == "" {
		form = DetectForm(sd.Signature)
	}
	if !form.valid() {
		return nil, wrapErr(ErrFormNotAllowed, "unknown form %q", form)
	}
	if !slices.Contains(v.c.forms, form) {
		return nil, wrapErr(ErrFormNotAllowed, "%s", form)
	}
	if len(sd.Document) > MaxDocumentSize+2 {
		return nil, wrapErr(ErrTooLarge, "document is %d bytes, more than %d", len(sd.Document), MaxDocumentSize)
	}
	doc := trimDocument(sd.Document)
	region, err := peekRegion(doc)
	if err != nil {
		return nil, err
	}
	keys := v.c.trust[trustKey{form, region}]
	if len(keys) == 0 {
		return nil, wrapErr(ErrUnknownRegion, "%s for %s", form, region)
	}
	raw, err := decodeBase64(sd.Signature)
	if err != nil {
		return nil, err
	}
	switch form {
	case FormSignature:
		err = verifyRaw(keys, doc, raw)
	default:
		err = verifyPKCS7(form, keys, doc, raw)
	}
	if err != nil {
		return nil, err
	}
	d, err := parseDocument(doc)
	if err != nil {
		return nil, err
	}
	d.Form = form
	if err := v.policy(d); err != nil {
		return nil, err
	}
	return d, nil
}

func (v *Verifier) policy(d *Document) error {
	c := &v.c
	if len(c.accounts) > 0 && !slices.Contains(c.accounts, d.AccountID) {
		return wrapErr(ErrPolicy, "account %s not allowed", d.AccountID)
	}
	if len(c.regions) > 0 && !slices.Contains(c.regions, d.Region) {
		return wrapErr(ErrPolicy, "region %s not allowed", d.Region)
	}
	if len(c.instances) > 0 && !slices.Contains(c.instances, d.InstanceID) {
		return wrapErr(ErrPolicy, "instance %s not allowed", d.InstanceID)
	}
	if c.maxAge > 0 {
		if age := c.now().Sub(d.PendingTime); age > c.maxAge {
			return wrapErr(ErrPolicy, "pendingTime %s is %s old, more than %s",
				d.PendingTime.UTC().Format(time.RFC3339), age.Round(time.Second), c.maxAge)
		}
	}
	for _, check := range c.checks {
		if err := check(d); err != nil {
			return wrapCause(ErrPolicy, err, "check")
		}
	}
	return nil
}

// Key sizes: AWS's /rsa2048 keys are 2048 bits, its /signature keys 1024
// (crypto/rsa refuses only keys below 1024 bits, so no GODEBUG is needed),
// its DSA keys L=1024, N=160.
const (
	minRSA2048Bits   = 2048
	minSignatureBits = 1024
	maxRSABits       = 8192
)

func checkKey(form Form, k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		min := minRSA2048Bits
		if form == FormSignature {
			min = minSignatureBits
		}
		if k.N == nil || k.N.BitLen() < min || k.N.BitLen() > maxRSABits {
			return fmt.Errorf("rsa key size not in [%d, %d]", min, maxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return errors.New("bad rsa public exponent")
		}
		return nil
	case *dsa.PublicKey:
		if form != FormPKCS7 {
			return errors.New("dsa key for a form that is not pkcs7")
		}
		if k.P == nil || k.Q == nil || k.G == nil || k.Y == nil ||
			k.P.BitLen() < 1024 || k.P.BitLen() > 3072 || k.Q.BitLen() != 160 {
			return errors.New("dsa key is not L>=1024, N=160")
		}
		// g and y must lie in the order-q subgroup and not be 1: with g = y
		// = 1 (crypto/dsa does not check) any signature with r = 1 verifies.
		one := big.NewInt(1)
		for _, x := range []*big.Int{k.G, k.Y} {
			if x.Cmp(one) <= 0 || x.Cmp(k.P) >= 0 || new(big.Int).Exp(x, k.Q, k.P).Cmp(one) != 0 {
				return errors.New("dsa key: g or y is not an element of order q")
			}
		}
		return nil
	default:
		return fmt.Errorf("unsupported key type %T", k)
	}
}

func verifyRaw(keys []crypto.PublicKey, doc, sig []byte) error {
	h := sha256.Sum256(doc)
	var last error = errors.New("no rsa key")
	for _, k := range keys {
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			continue
		}
		if last = rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); last == nil {
			return nil
		}
	}
	return wrapCause(ErrBadSignature, last, "signature")
}

// verifyPKCS7 checks a PKCS#7 signature of form: the attached content equals
// doc byte for byte, the messageDigest attribute equals the digest of that
// content, CMSAlgorithmProtection (if present) names the signer's
// algorithms, and the signature over the signed attributes verifies under
// one of keys with the algorithms the form allows.
func verifyPKCS7(form Form, keys []crypto.PublicKey, doc, raw []byte) error {
	m, err := parsePKCS7(raw)
	if err != nil {
		return wrapCause(ErrBadSignature, err, "parse %s", form)
	}
	if !bytes.Equal(m.content, doc) {
		return wrapErr(ErrBadSignature, "%s: signed content differs from the document presented", form)
	}
	if err := m.checkProtection(); err != nil {
		return wrapCause(ErrBadSignature, err, "%s", form)
	}
	var hash crypto.Hash
	switch {
	case m.digestAlg.oid.Equal(oidSHA256):
		hash = crypto.SHA256
	case m.digestAlg.oid.Equal(oidSHA1) && form == FormPKCS7:
		hash = crypto.SHA1
	default:
		return wrapErr(ErrBadSignature, "%s: digest algorithm %s not allowed", form, m.digestAlg.oid)
	}
	if subtle.ConstantTimeCompare(m.messageDigest, digest(hash, m.content)) != 1 {
		return wrapErr(ErrBadSignature, "%s: message digest does not match the content", form)
	}
	attrDigest := digest(hash, m.signedAttrs)
	isDSA := m.sigAlg.oid.Equal(oidDSAWithSHA1) || m.sigAlg.oid.Equal(oidDSA)
	isRSA := m.sigAlg.oid.Equal(oidRSAEncryption) ||
		(hash == crypto.SHA256 && m.sigAlg.oid.Equal(oidSHA256WithRSA)) ||
		(hash == crypto.SHA1 && m.sigAlg.oid.Equal(oidSHA1WithRSA))
	switch {
	case isDSA && form == FormPKCS7 && hash == crypto.SHA1:
	case isRSA && (form == FormRSA2048 || form == FormPKCS7):
	default:
		return wrapErr(ErrBadSignature, "%s: signature algorithm %s with digest %s not allowed", form, m.sigAlg.oid, m.digestAlg.oid)
	}
	var last error = errors.New("no key of the signature's type")
	for _, k := range keys {
		switch pub := k.(type) {
		case *rsa.PublicKey:
			if isRSA {
				if last = rsa.VerifyPKCS1v15(pub, hash, attrDigest, m.signature); last == nil {
					return nil
				}
			}
		case *dsa.PublicKey:
			if isDSA {
				if last = verifyDSA(pub, attrDigest, m.signature); last == nil {
					return nil
				}
			}
		}
	}
	return wrapCause(ErrBadSignature, last, "%s", form)
}

func digest(h crypto.Hash, b []byte) []byte {
	if h == crypto.SHA1 {
		s := sha1.Sum(b)
		return s[:]
	}
	s := sha256.Sum256(b)
	return s[:]
}

// verifyDSA checks a DER Dss-Sig-Value (SEQUENCE { r, s INTEGER }) over a
// SHA-1 digest, strictly: DER only, nothing after it, 0 < r, s < q.
func verifyDSA(pub *dsa.PublicKey, hashed, sig []byte) error {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil {
		return fmt.Errorf("dsa signature: %w", err)
	}
	if len(rest) != 0 {
		return errors.New("dsa signature: trailing data")
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.Cmp(pub.Q) >= 0 || rs.S.Cmp(pub.Q) >= 0 {
		return errors.New("dsa signature: r or s out of range")
	}
	if len(hashed) != sha1.Size || pub.Q.BitLen() != 160 {
		return errors.New("dsa signature: not dsa-sha1 with a 160-bit q")
	}
	if !dsa.Verify(pub, hashed, rs.R, rs.S) {
		return errors.New("dsa signature does not verify")
	}
	return nil
}
