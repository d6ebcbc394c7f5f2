package handshake

import (
	"errors"
	"fmt"
)

// ErrRejected is matched (errors.Is) by the error of a handshake the peer
// rejected: on the client when the server refused it, on the server when the
// client did. The error's text carries the peer's reason:
//
//	handshake: rejected by server: <reason>
var ErrRejected = errors.New("handshake: rejected by peer")

// Reject returns an error a ServerFunc (or ClientFunc) returns to refuse the
// peer with a reason the peer is told ("handshake: rejected by server:
// <reason>"). The reason is sent in clear text to the peer (inside the inner
// credentials' channel); it is truncated to 512 bytes and control characters
// are replaced. Any other error a function returns is reported to the peer
// with a generic reason, so no internal detail leaks.
func Reject(reason string) error {
	return &rejectError{reason: sanitizeReason(reason)}
}

// rejectError is what Reject returns: the local side's refusal.
type rejectError struct{ reason string }

func (e *rejectError) Error() string { return "handshake: rejecting peer: " + e.reason }

// rejectedError is the peer's refusal, as received.
type rejectedError struct {
	by     string // "server" or "client"
	reason string
}

func (e *rejectedError) Error() string {
	return fmt.Sprintf("handshake: rejected by %s: %s", e.by, e.reason)
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *rejectedError) Is(target error) bool { return target == ErrRejected }

// Reasons sent to the peer when the local function fails without Reject.
const (
	reasonServerFailed = "server handshake failed"
	reasonClientFailed = "client handshake failed"
	reasonTimeout      = "handshake timed out"
	reasonProtocol     = "protocol error"
)
