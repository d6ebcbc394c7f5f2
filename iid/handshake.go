package iid

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"

	"github.com/grpcutil/grpcutil/handshake"
)

// DocumentSource supplies the signed document a client presents. *Fetcher
// is one; Static wraps a document fetched earlier. Implementations must be
// safe for concurrent use.
type DocumentSource interface {
	Fetch(ctx context.Context) (*SignedDocument, error)
}

// Static returns a DocumentSource that always supplies sd.
func Static(sd SignedDocument) DocumentSource { return staticSource(sd) }

type staticSource SignedDocument

func (s staticSource) Fetch(context.Context) (*SignedDocument, error) {
	sd := SignedDocument(s)
	return &sd, nil
}

// ClientOption configures NewClientHandshake.
type ClientOption interface {
	applyClient(*clientConfig)
}

type clientConfig struct {
	allowInsecure bool
}

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyClient(c *clientConfig) { f(c) }

// WithInsecureChannelForTesting lets the client send its document over an
// inner channel without privacy and integrity (insecure credentials in
// tests). Never use it in production: the document is a bearer credential.
func WithInsecureChannelForTesting() ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.allowInsecure = true })
}

// NewClientHandshake returns the client side of the exchange for
// handshake.Wrap: it gets a signed document from src and sends it to the
// server. It refuses (before fetching anything) to send it on an inner
// channel that is not at credentials.PrivacyAndIntegrity, so that the
// bearer credential only travels encrypted to a server the inner
// credentials authenticated; pin that server in the inner credentials.
// The connection's AuthInfo value on the client is the SignedDocument sent.
func NewClientHandshake(src DocumentSource, opts ...ClientOption) handshake.ClientFunc {
	var c clientConfig
	for _, o := range opts {
		if o != nil {
			o.applyClient(&c)
		}
	}
	return func(ctx context.Context, m handshake.Messenger, inner credentials.AuthInfo) (any, error) {
		if !c.allowInsecure {
			if err := checkChannel(inner); err != nil {
				return nil, err
			}
		}
		sd, err := src.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("iid: client handshake: %w", err)
		}
		msg, err := marshalSigned(sd)
		if err != nil {
			return nil, err
		}
		if err := m.Send(msg); err != nil {
			return nil, fmt.Errorf("iid: client handshake: send: %w", err)
		}
		return sd, nil
	}
}

// ErrInsecureChannel is returned by the client handshake when the inner
// channel is not authenticated and encrypted.
var ErrInsecureChannel = errors.New("iid: refusing to send the instance identity document on a channel without privacy and integrity")

func checkChannel(inner credentials.AuthInfo) error {
	ci, ok := inner.(interface {
		GetCommonAuthInfo() credentials.CommonAuthInfo
	})
	if !ok || ci.GetCommonAuthInfo().SecurityLevel != credentials.PrivacyAndIntegrity {
		return ErrInsecureChannel
	}
	return nil
}

// Reasons the server gives a refused client (the detail stays in the
// server's own error values, never on the wire).
const (
	reasonMalformed = "iid: malformed handshake message"
	reasonInvalid   = "iid: instance identity document does not verify"
	reasonPolicy    = "iid: instance identity document refused by policy"
)

// NewServerHandshake returns the server side of the exchange for
// handshake.Wrap: it receives the client's signed document, verifies it
// with v (which applies v's policy) and refuses the client if it fails. The
// verified *Document becomes the connection's AuthInfo value; read it in
// handlers with FromContext.
func NewServerHandshake(v *Verifier) handshake.ServerFunc {
	return func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
		msg, err := m.Recv()
		if err != nil {
			return nil, fmt.Errorf("iid: server handshake: %w", err)
		}
		sd, err := unmarshalSigned(msg)
		if err != nil {
			return nil, handshake.Reject(reasonMalformed)
		}
		d, err := v.Verify(*sd)
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, ErrPolicy):
			return nil, handshake.Reject(reasonPolicy)
		default:
			return nil, handshake.Reject(reasonInvalid)
		}
	}
}

// FromContext returns the verified Document of the client that made the
// RPC whose server-side ctx this is, when the connection was made with
// handshake.Wrap and NewServerHandshake.
func FromContext(ctx context.Context) (*Document, bool) {
	ai, ok := handshake.FromContext(ctx)
	if !ok {
		return nil, false
	}
	d, ok := ai.Value().(*Document)
	return d, ok && d != nil
}

// The handshake message: a version byte (1), a form byte (1 rsa2048,
// 2 signature, 3 pkcs7), then the document and the signature, each with a
// 4-byte big-endian length.
const wireVersion = 1

var wireForms = []Form{FormRSA2048, FormSignature, FormPKCS7}

func marshalSigned(sd *SignedDocument) ([]byte, error) {
	code := 0
	for i, f := range wireForms {
		if sd.Form == f {
			code = i + 1
		}
	}
	if code == 0 {
		return nil, fmt.Errorf("iid: client handshake: unknown form %q", sd.Form)
	}
	if len(sd.Document) > MaxDocumentSize || len(sd.Signature) > MaxSignatureSize {
		return nil, wrapErr(ErrTooLarge, "client handshake: document or signature")
	}
	b := make([]byte, 0, 10+len(sd.Document)+len(sd.Signature))
	b = append(b, wireVersion, byte(code))
	b = binary.BigEndian.AppendUint32(b, uint32(len(sd.Document)))
	b = append(b, sd.Document...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sd.Signature)))
	b = append(b, sd.Signature...)
	return b, nil
}

func unmarshalSigned(b []byte) (*SignedDocument, error) {
	if len(b) < 2 || b[0] != wireVersion || b[1] == 0 || int(b[1]) > len(wireForms) {
		return nil, errors.New("iid: handshake message: bad header")
	}
	sd := &SignedDocument{Form: wireForms[b[1]-1]}
	b = b[2:]
	var err error
	if sd.Document, b, err = readField(b, MaxDocumentSize); err != nil {
		return nil, err
	}
	if sd.Signature, b, err = readField(b, MaxSignatureSize); err != nil {
		return nil, err
	}
	if len(b) != 0 {
		return nil, errors.New("iid: handshake message: trailing data")
	}
	return sd, nil
}

func readField(b []byte, limit int) (field, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("iid: handshake message: truncated")
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if n == 0 || n > uint32(limit) || int(n) > len(b) {
		return nil, nil, errors.New("iid: handshake message: bad field length")
	}
	return b[:n:n], b[n:], nil
}
