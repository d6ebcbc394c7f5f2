package iid

import (
	"encoding/json"
	"regexp"
	"time"
)

// Form names one of the three signatures IMDS serves for the instance
// identity document; its value is the last element of the IMDS path.
type Form string

const (
	// FormRSA2048 is /latest/dynamic/instance-identity/rsa2048: a PKCS#7
	// SignedData, RSA-2048 with SHA-256, the document attached. The default.
	FormRSA2048 Form = "rsa2048"
	// FormSignature is /latest/dynamic/instance-identity/signature: a raw
	// RSA PKCS#1 v1.5 SHA-256 signature over the document with a per-region
	// 1024-bit key. Legacy; accepted only when allowed.
	FormSignature Form = "signature"
	// FormPKCS7 is /latest/dynamic/instance-identity/pkcs7: a PKCS#7
	// SignedData, DSA with SHA-1 (1024-bit key), the document attached.
	// Legacy; accepted only when allowed.
	FormPKCS7 Form = "pkcs7"
)

func (f Form) valid() bool {
	return f == FormRSA2048 || f == FormSignature || f == FormPKCS7
}

// Bounds on what the package reads, fetches and verifies. Real documents are
// about 500 bytes and real signatures under 2 KiB of base64.
const (
	// MaxDocumentSize is the largest document accepted.
	MaxDocumentSize = 16 << 10
	// MaxSignatureSize is the largest signature accepted, as base64 text.
	MaxSignatureSize = 32 << 10
)

// SignedDocument is an instance identity document with one of its
// signatures, as IMDS serves them: Document holds the JSON bytes and
// Signature the base64 text.
type SignedDocument struct {
	Document  []byte
	Signature []byte
	Form      Form
}

// Document is a verified instance identity document. Only bytes whose
// signature verified are ever parsed into one.
type Document struct {
	AccountID               string    `json:"accountId"`
	Architecture            string    `json:"architecture"`
	AvailabilityZone        string    `json:"availabilityZone"`
	AvailabilityZoneID      string    `json:"availabilityZoneId,omitempty"`
	BillingProducts         []string  `json:"billingProducts"`
	DevpayProductCodes      []string  `json:"devpayProductCodes"`
	MarketplaceProductCodes []string  `json:"marketplaceProductCodes"`
	ImageID                 string    `json:"imageId"`
	InstanceID              string    `json:"instanceId"`
	InstanceType            string    `json:"instanceType"`
	KernelID                string    `json:"kernelId"`
	PendingTime             time.Time `json:"pendingTime"`
	PrivateIP               string    `json:"privateIp"`
	RamdiskID               string    `json:"ramdiskId"`
	Region                  string    `json:"region"`
	Version                 string    `json:"version"`

	// Form is the signature form that verified the document.
	Form Form `json:"-"`
	// Raw holds the verified document bytes.
	Raw []byte `json:"-"`
}

var (
	accountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	instanceRE = regexp.MustCompile(`^i-[0-9a-f]{8,32}$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)
)

// parseDocument parses verified bytes into a Document and checks the fields
// the package relies on.
func parseDocument(b []byte) (*Document, error) {
	if len(b) > MaxDocumentSize {
		return nil, wrapErr(ErrTooLarge, "document is %d bytes, more than %d", len(b), MaxDocumentSize)
	}
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, wrapCause(ErrMalformedDocument, err, "parse json")
	}
	switch {
	case !accountRE.MatchString(d.AccountID):
		return nil, wrapErr(ErrMalformedDocument, "accountId %q is not 12 digits", d.AccountID)
	case !instanceRE.MatchString(d.InstanceID):
		return nil, wrapErr(ErrMalformedDocument, "instanceId %q is not an instance id", d.InstanceID)
	case !regionRE.MatchString(d.Region):
		return nil, wrapErr(ErrMalformedDocument, "region %q is not a region name", d.Region)
	case d.PendingTime.IsZero():
		return nil, wrapErr(ErrMalformedDocument, "pendingTime missing")
	}
	d.Raw = append([]byte(nil), b...)
	return &d, nil
}

// peekRegion reads the region claimed by a document that is not verified
// yet, to choose the key that must verify it. Nothing else of it is used.
func peekRegion(b []byte) (string, error) {
	var r struct {
		Region string `json:"region"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", wrapCause(ErrMalformedDocument, err, "parse json")
	}
	if !regionRE.MatchString(r.Region) {
		return "", wrapErr(ErrMalformedDocument, "region %q is not a region name", r.Region)
	}
	return r.Region, nil
}
