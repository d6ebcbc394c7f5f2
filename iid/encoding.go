package iid

import (
	"bytes"
	"encoding/base64"
)

// decodeBase64 decodes base64 text as IMDS serves it: standard alphabet,
// padded, wrapped at any width (64, 76 columns or one line), with or without
// a trailing newline. Spaces, tabs, CR and LF are ignored anywhere; anything
// else outside the alphabet is an error.
func decodeBase64(text []byte) ([]byte, error) {
	if len(text) > MaxSignatureSize {
		return nil, wrapErr(ErrTooLarge, "signature is %d bytes, more than %d", len(text), MaxSignatureSize)
	}
	clean := make([]byte, 0, len(text))
	for _, c := range text {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		clean = append(clean, c)
	}
	if len(clean) == 0 {
		return nil, wrapErr(ErrBadSignature, "empty signature")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Strict().Decode(out, clean)
	if err != nil {
		return nil, wrapCause(ErrBadSignature, err, "decode base64")
	}
	return out[:n], nil
}

// trimDocument drops the one trailing newline ("\n" or "\r\n") a document
// picks up when it is stored in a file or echoed; IMDS serves the document
// without one, and that is what AWS signed. Only the trimmed bytes are ever
// verified or parsed.
func trimDocument(doc []byte) []byte {
	if bytes.HasSuffix(doc, []byte("\r\n")) {
		return doc[:len(doc)-2]
	}
	if bytes.HasSuffix(doc, []byte("\n")) {
		return doc[:len(doc)-1]
	}
	return doc
}
