package iid

import (
	"errors"
	"fmt"
)

// Sentinel errors callers can branch on with errors.Is. Every error the
// package returns begins with "iid: " and wraps one of these where it applies.
var (
	// ErrBadSignature: the signature is malformed, does not verify under the
	// trusted key, or signs other bytes than the document presented.
	ErrBadSignature = errors.New("iid: signature does not verify")
	// ErrUnknownRegion: no trusted key for the document's region and the
	// signature's form. The verifier fails closed; add keys with
	// WithCertificates or WithPublicKeys.
	ErrUnknownRegion = errors.New("iid: no trusted key for region")
	// ErrFormNotAllowed: the signature's form is not one the verifier was
	// told to accept (only FormRSA2048 by default).
	ErrFormNotAllowed = errors.New("iid: signature form not allowed")
	// ErrMalformedDocument: the signed document is not a well-formed
	// instance identity document.
	ErrMalformedDocument = errors.New("iid: malformed document")
	// ErrTooLarge: an input is larger than the package's bounds.
	ErrTooLarge = errors.New("iid: input too large")
	// ErrPolicy: the document verified but the verifier's policy refuses it
	// (account, region, instance id, age, or the caller's own check).
	ErrPolicy = errors.New("iid: document refused by policy")
)

// wrapErr returns an error "iid: <msg>: <sentinel detail>" that matches
// sentinel with errors.Is.
func wrapErr(sentinel error, format string, args ...any) error {
	return &iidError{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

type iidError struct {
	sentinel error
	msg      string
	cause    error
}

func (e *iidError) Error() string {
	s := e.sentinel.Error() + ": " + e.msg
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *iidError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

// wrapCause is wrapErr with an underlying cause that errors.Is/As also see.
func wrapCause(sentinel, cause error, format string, args ...any) error {
	return &iidError{sentinel: sentinel, msg: fmt.Sprintf(format, args...), cause: cause}
}
