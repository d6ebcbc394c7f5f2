package iid

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

var (
	oidData                   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttrContentType        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrAlgProtection      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 52}
	oidSHA1                   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256                 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA1WithRSA            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidDSA                    = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidDSAWithSHA1            = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 3}
	errNotSignedData          = errors.New("not a pkcs7 signed-data")
	errAlgorithmParamsPresent = errors.New("unexpected algorithm parameters")
)

// algID is an AlgorithmIdentifier whose parameters are absent or NULL (the
// only forms the algorithms here use).
type algID struct {
	oid asn1.ObjectIdentifier
	// raw is the DER of the whole AlgorithmIdentifier.
	raw []byte
}

// signedMessage is what parsePKCS7 extracts from a SignedData with one
// signer and signed attributes. Nothing in it is verified yet.
type signedMessage struct {
	content       []byte // the eContent: the signed document
	digestAlg     algID
	sigAlg        algID
	signedAttrs   []byte // DER of the signed attributes as a SET: what is signed
	signature     []byte
	sid           []byte // DER of the signer identifier (not used to verify)
	messageDigest []byte
	signingTime   time.Time // zero when absent
	// protection holds the CMSAlgorithmProtection attribute's algorithms,
	// when present.
	protDigest, protSig *algID
}

// derReader reads consecutive DER elements.
type derReader struct{ b []byte }

func (r *derReader) empty() bool { return len(r.b) == 0 }

func (r *derReader) next() (asn1.RawValue, error) {
	var rv asn1.RawValue
	rest, err := asn1.Unmarshal(r.b, &rv)
	if err != nil {
		return rv, err
	}
	r.b = rest
	return rv, nil
}

// expect reads the next element and checks its class, tag and form.
func (r *derReader) expect(class, tag int, compound bool, what string) (asn1.RawValue, error) {
	rv, err := r.next()
	if err != nil {
		return rv, fmt.Errorf("%s: %w", what, err)
	}
	if rv.Class != class || rv.Tag != tag || rv.IsCompound != compound {
		return rv, fmt.Errorf("%s: unexpected element (class %d tag %d)", what, rv.Class, rv.Tag)
	}
	return rv, nil
}

// peek reports whether the next element has the given class and tag.
func (r *derReader) peek(class, tag int) bool {
	if len(r.b) == 0 {
		return false
	}
	b := r.b[0]
	return int(b>>6) == class && int(b&0x1f) == tag
}

func (r *derReader) oid(what string) (asn1.ObjectIdentifier, error) {
	rv, err := r.expect(asn1.ClassUniversal, asn1.TagOID, false, what)
	if err != nil {
		return nil, err
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(rv.FullBytes, &oid); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return oid, nil
}

func (r *derReader) integer(what string) (int, error) {
	rv, err := r.expect(asn1.ClassUniversal, asn1.TagInteger, false, what)
	if err != nil {
		return 0, err
	}
	var v int
	if _, err := asn1.Unmarshal(rv.FullBytes, &v); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func (r *derReader) algID(what string) (algID, error) {
	rv, err := r.expect(asn1.ClassUniversal, asn1.TagSequence, true, what)
	if err != nil {
		return algID{}, err
	}
	return parseAlgID(rv, what)
}

func parseAlgID(rv asn1.RawValue, what string) (algID, error) {
	in := derReader{rv.Bytes}
	oid, err := in.oid(what)
	if err != nil {
		return algID{}, err
	}
	if !in.empty() {
		p, err := in.next()
		if err != nil {
			return algID{}, fmt.Errorf("%s: %w", what, err)
		}
		if p.Class != asn1.ClassUniversal || p.Tag != asn1.TagNull || len(p.Bytes) != 0 || !in.empty() {
			return algID{}, fmt.Errorf("%s: %w", what, errAlgorithmParamsPresent)
		}
	}
	return algID{oid: oid, raw: rv.FullBytes}, nil
}

func (a algID) equal(b algID) bool { return a.oid.Equal(b.oid) }

// parsePKCS7 parses a DER (or BER, converted first) PKCS#7 ContentInfo
// holding a SignedData with attached id-data content, exactly one
// SignerInfo, and signed attributes carrying contentType id-data and one
// messageDigest. Certificates and CRLs in the message are skipped: trust
// comes only from the verifier's keys. Unsigned attributes are refused.
func parsePKCS7(ber []byte) (*signedMessage, error) {
	der, err := berToDER(ber)
	if err != nil {
		return nil, err
	}
	top := derReader{der}
	ci, err := top.expect(asn1.ClassUniversal, asn1.TagSequence, true, "content info")
	if err != nil {
		return nil, err
	}
	if !top.empty() {
		return nil, errors.New("trailing data after content info")
	}
	r := derReader{ci.Bytes}
	ct, err := r.oid("content type")
	if err != nil {
		return nil, err
	}
	if !ct.Equal(oidSignedData) {
		return nil, errNotSignedData
	}
	explicit, err := r.expect(asn1.ClassContextSpecific, 0, true, "content")
	if err != nil {
		return nil, err
	}
	if !r.empty() {
		return nil, errors.New("trailing data in content info")
	}
	r = derReader{explicit.Bytes}
	sdv, err := r.expect(asn1.ClassUniversal, asn1.TagSequence, true, "signed data")
	if err != nil {
		return nil, err
	}
	if !r.empty() {
		return nil, errors.New("trailing data after signed data")
	}

	sd := derReader{sdv.Bytes}
	if v, err := sd.integer("signed data version"); err != nil {
		return nil, err
	} else if v != 1 && v != 3 {
		return nil, fmt.Errorf("signed data version %d", v)
	}
	das, err := sd.expect(asn1.ClassUniversal, asn1.TagSet, true, "digest algorithms")
	if err != nil {
		return nil, err
	}
	var digestAlgs []algID
	for dr := (derReader{das.Bytes}); !dr.empty(); {
		a, err := dr.algID("digest algorithm")
		if err != nil {
			return nil, err
		}
		digestAlgs = append(digestAlgs, a)
	}
	eci, err := sd.expect(asn1.ClassUniversal, asn1.TagSequence, true, "encapsulated content info")
	if err != nil {
		return nil, err
	}
	m := &signedMessage{}
	{
		er := derReader{eci.Bytes}
		ect, err := er.oid("encapsulated content type")
		if err != nil {
			return nil, err
		}
		if !ect.Equal(oidData) {
			return nil, errors.New("encapsulated content is not id-data")
		}
		if er.empty() {
			return nil, errors.New("no attached content (detached signatures are not used by imds)")
		}
		ec, err := er.expect(asn1.ClassContextSpecific, 0, true, "encapsulated content")
		if err != nil {
			return nil, err
		}
		if !er.empty() {
			return nil, errors.New("trailing data in encapsulated content info")
		}
		cr := derReader{ec.Bytes}
		os, err := cr.expect(asn1.ClassUniversal, asn1.TagOctetString, false, "content octets")
		if err != nil {
			return nil, err
		}
		if !cr.empty() {
			return nil, errors.New("trailing data after content octets")
		}
		m.content = os.Bytes
	}
	if sd.peek(asn1.ClassContextSpecific, 0) { // certificates: ignored
		if _, err := sd.expect(asn1.ClassContextSpecific, 0, true, "certificates"); err != nil {
			return nil, err
		}
	}
	if sd.peek(asn1.ClassContextSpecific, 1) { // crls: ignored
		if _, err := sd.expect(asn1.ClassContextSpecific, 1, true, "crls"); err != nil {
			return nil, err
		}
	}
	sis, err := sd.expect(asn1.ClassUniversal, asn1.TagSet, true, "signer infos")
	if err != nil {
		return nil, err
	}
	if !sd.empty() {
		return nil, errors.New("trailing data in signed data")
	}
	sr := derReader{sis.Bytes}
	si, err := sr.expect(asn1.ClassUniversal, asn1.TagSequence, true, "signer info")
	if err != nil {
		return nil, err
	}
	if !sr.empty() {
		return nil, errors.New("more than one signer info")
	}
	if err := m.parseSignerInfo(si.Bytes); err != nil {
		return nil, err
	}
	if len(digestAlgs) != 1 || !digestAlgs[0].equal(m.digestAlg) {
		return nil, errors.New("digest algorithms do not match the signer's")
	}
	return m, nil
}

func (m *signedMessage) parseSignerInfo(b []byte) error {
	r := derReader{b}
	v, err := r.integer("signer info version")
	if err != nil {
		return err
	}
	// sid: issuerAndSerialNumber (version 1) or [0] subjectKeyIdentifier
	// (version 3). Not used: the key comes from the verifier's trust.
	var sid asn1.RawValue
	switch {
	case v == 1:
		if sid, err = r.expect(asn1.ClassUniversal, asn1.TagSequence, true, "signer id"); err != nil {
			return err
		}
	case v == 3:
		if sid, err = r.expect(asn1.ClassContextSpecific, 0, false, "signer id"); err != nil {
			return err
		}
	default:
		return fmt.Errorf("signer info version %d", v)
	}
	m.sid = sid.FullBytes
	if m.digestAlg, err = r.algID("digest algorithm"); err != nil {
		return err
	}
	attrs, err := r.expect(asn1.ClassContextSpecific, 0, true, "signed attributes")
	if err != nil {
		return err
	}
	if m.sigAlg, err = r.algID("signature algorithm"); err != nil {
		return err
	}
	sig, err := r.expect(asn1.ClassUniversal, asn1.TagOctetString, false, "signature")
	if err != nil {
		return err
	}
	m.signature = sig.Bytes
	if !r.empty() {
		return errors.New("unsigned attributes or trailing data in signer info")
	}
	// What is signed is the DER of the attributes with the SET tag in
	// place of the [0] IMPLICIT tag (RFC 5652 section 5.4).
	m.signedAttrs = append([]byte{0x31}, attrs.FullBytes[1:]...)
	return m.parseAttributes(attrs.Bytes)
}

func (m *signedMessage) parseAttributes(b []byte) error {
	seen := map[string]bool{}
	var haveType bool
	for r := (derReader{b}); !r.empty(); {
		a, err := r.expect(asn1.ClassUniversal, asn1.TagSequence, true, "attribute")
		if err != nil {
			return err
		}
		ar := derReader{a.Bytes}
		typ, err := ar.oid("attribute type")
		if err != nil {
			return err
		}
		vals, err := ar.expect(asn1.ClassUniversal, asn1.TagSet, true, "attribute values")
		if err != nil {
			return err
		}
		if !ar.empty() {
			return errors.New("trailing data in attribute")
		}
		key := typ.String()
		if seen[key] {
			return fmt.Errorf("attribute %s appears twice", key)
		}
		seen[key] = true
		vr := derReader{vals.Bytes}
		val, err := vr.next()
		if err != nil {
			return fmt.Errorf("attribute %s value: %w", key, err)
		}
		if !vr.empty() {
			return fmt.Errorf("attribute %s has more than one value", key)
		}
		switch {
		case typ.Equal(oidAttrContentType):
			var ct asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(val.FullBytes, &ct); err != nil || len(rest) != 0 {
				return errors.New("content-type attribute is not an object identifier")
			}
			if !ct.Equal(oidData) {
				return errors.New("content-type attribute is not id-data")
			}
			haveType = true
		case typ.Equal(oidAttrMessageDigest):
			if val.Class != asn1.ClassUniversal || val.Tag != asn1.TagOctetString || val.IsCompound {
				return errors.New("message-digest attribute is not an octet string")
			}
			m.messageDigest = val.Bytes
		case typ.Equal(oidAttrSigningTime):
			var t time.Time
			if rest, err := asn1.Unmarshal(val.FullBytes, &t); err != nil || len(rest) != 0 {
				return errors.New("signing-time attribute is not a time")
			}
			m.signingTime = t
		case typ.Equal(oidAttrAlgProtection):
			if err := m.parseAlgProtection(val); err != nil {
				return err
			}
		}
	}
	if !haveType {
		return errors.New("no content-type attribute")
	}
	if m.messageDigest == nil {
		return errors.New("no message-digest attribute")
	}
	return nil
}

// parseAlgProtection reads CMSAlgorithmProtection (RFC 6211):
// SEQUENCE { digestAlgorithm, signatureAlgorithm [1] IMPLICIT OPTIONAL,
// macAlgorithm [2] IMPLICIT OPTIONAL }.
func (m *signedMessage) parseAlgProtection(val asn1.RawValue) error {
	if val.Class != asn1.ClassUniversal || val.Tag != asn1.TagSequence || !val.IsCompound {
		return errors.New("algorithm-protection attribute is not a sequence")
	}
	r := derReader{val.Bytes}
	d, err := r.algID("algorithm-protection digest")
	if err != nil {
		return err
	}
	m.protDigest = &d
	if r.peek(asn1.ClassContextSpecific, 1) {
		sv, err := r.expect(asn1.ClassContextSpecific, 1, true, "algorithm-protection signature")
		if err != nil {
			return err
		}
		s, err := parseAlgID(sv, "algorithm-protection signature")
		if err != nil {
			return err
		}
		m.protSig = &s
	}
	if !r.empty() {
		return errors.New("algorithm-protection attribute has a mac algorithm or trailing data")
	}
	if m.protSig == nil {
		return errors.New("algorithm-protection attribute has no signature algorithm")
	}
	return nil
}

// checkProtection checks that CMSAlgorithmProtection, when present, names
// the algorithms the signer info uses.
func (m *signedMessage) checkProtection() error {
	if m.protDigest == nil {
		return nil
	}
	if !m.protDigest.equal(m.digestAlg) || !m.protSig.equal(m.sigAlg) {
		return errors.New("algorithm-protection attribute does not match the signer's algorithms")
	}
	return nil
}
