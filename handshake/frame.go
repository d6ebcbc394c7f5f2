package handshake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// Wire format. Every frame is a type byte, a 4-byte big-endian payload
// length and the payload:
//
//	+------+----------------+-----------------+
//	| type | length (uint32)| payload (length)|
//	+------+----------------+-----------------+
//
// Both peers exchange data frames while their functions run, then each sends
// exactly one final frame (accept or reject) and reads until it has the
// peer's final frame. Frames are read with exact-length reads (no read-ahead
// buffer), so nothing past the peer's final frame is consumed and the inner
// secured connection can be handed to gRPC as it is.
const (
	frameData   byte = 0x01 // payload: one Messenger message
	frameAccept byte = 0x02 // payload: empty
	frameReject byte = 0x03 // payload: UTF-8 reason, at most maxReasonLen bytes

	headerLen = 5

	// maxReasonLen bounds a rejection reason, both sent and accepted.
	maxReasonLen = 512
)

// frameLimit returns the largest payload allowed for a frame of type typ.
func frameLimit(typ byte, maxMsg int) (int, error) {
	switch typ {
	case frameData:
		return maxMsg, nil
	case frameAccept:
		return 0, nil
	case frameReject:
		return maxReasonLen, nil
	default:
		return 0, protocolErrorf("handshake: unknown frame type 0x%02x (peer does not speak this protocol)", typ)
	}
}

// readFrame reads exactly one frame from r. It checks the type and the
// announced length against the limits before allocating, so a peer that
// announces 4 GiB costs nothing but the 5-byte header.
func readFrame(r io.Reader, maxMsg int) (byte, []byte, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("handshake: reading frame header: %w", err)
	}
	typ := hdr[0]
	limit, err := frameLimit(typ, maxMsg)
	if err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(limit) {
		return 0, nil, protocolErrorf("handshake: frame of type 0x%02x announces %d bytes, over the limit of %d", typ, n, limit)
	}
	if n == 0 {
		return typ, nil, nil
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("handshake: reading frame payload: %w", err)
	}
	return typ, payload, nil
}

// appendFrame appends the encoding of one frame to b.
func appendFrame(b []byte, typ byte, payload []byte) []byte {
	b = append(b, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(payload)))
	return append(b, payload...)
}

// writeFrame writes one frame with a single Write call (one TLS record for
// small frames).
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	buf := appendFrame(make([]byte, 0, headerLen+len(payload)), typ, payload)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("handshake: writing frame: %w", err)
	}
	return nil
}

// sanitizeReason makes a reason safe to put into an error string and a log
// line: valid UTF-8, no control characters, at most maxReasonLen bytes.
func sanitizeReason(s string) string {
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	if len(s) > maxReasonLen { // replacement runes are 3 bytes: trim again
		s = s[:maxReasonLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	if s == "" {
		s = "no reason given"
	}
	return s
}

// protocolError marks a peer that broke the framing; it matches errProtocol.
type protocolError struct{ msg string }

func (e *protocolError) Error() string        { return e.msg }
func (e *protocolError) Is(target error) bool { return target == errProtocol }

func protocolErrorf(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// messenger is the Messenger handed to ClientFunc and ServerFunc. It is not
// safe for concurrent use, like a net.Conn's Read or Write alone.
type messenger struct {
	rw     io.ReadWriter
	maxMsg int
	side   string // the peer's role: "server" or "client"

	done atomic.Bool // set once the function returned

	// peerFinal records the peer's final frame once it was read, whether by
	// Recv (the peer finished early) or by the closing exchange.
	peerFinal    byte
	peerRejected error

	// err is the first failure of the connection or of the framing; after
	// it the messenger is unusable.
	err error
}

var (
	errMessengerDone = errors.New("handshake: messenger used after the handshake function returned")
	errPeerFinished  = errors.New("handshake: peer ended the exchange while a message was expected")
)

func (m *messenger) Send(msg []byte) error {
	if m.done.Load() {
		return errMessengerDone
	}
	if len(msg) > m.maxMsg {
		return fmt.Errorf("handshake: message of %d bytes exceeds the limit of %d", len(msg), m.maxMsg)
	}
	if m.err != nil {
		return m.err
	}
	if m.peerFinal == frameReject {
		return m.peerRejected
	}
	if err := writeFrame(m.rw, frameData, msg); err != nil {
		m.err = err
		return err
	}
	return nil
}

func (m *messenger) Recv() ([]byte, error) {
	if m.done.Load() {
		return nil, errMessengerDone
	}
	if m.err != nil {
		return nil, m.err
	}
	if m.peerFinal != 0 {
		if m.peerRejected != nil {
			return nil, m.peerRejected
		}
		return nil, errPeerFinished
	}
	typ, payload, err := readFrame(m.rw, m.maxMsg)
	if err != nil {
		m.err = err
		return nil, err
	}
	switch typ {
	case frameData:
		if payload == nil {
			payload = []byte{}
		}
		return payload, nil
	case frameReject:
		m.peerFinal = typ
		m.peerRejected = &rejectedError{by: m.side, reason: sanitizeReason(string(payload))}
		return nil, m.peerRejected
	default: // frameAccept
		m.peerFinal = typ
		return nil, errPeerFinished
	}
}

// awaitFinal reads the peer's final frame if it was not read yet. Data frames
// the local function left unread are a protocol error.
func (m *messenger) awaitFinal() error {
	if m.err != nil {
		return m.err
	}
	if m.peerFinal == 0 {
		typ, payload, err := readFrame(m.rw, m.maxMsg)
		if err != nil {
			m.err = err
			return err
		}
		switch typ {
		case frameData:
			m.err = protocolErrorf("handshake: %s sent a message the local function did not read", m.side)
			return m.err
		case frameReject:
			m.peerRejected = &rejectedError{by: m.side, reason: sanitizeReason(string(payload))}
		}
		m.peerFinal = typ
	}
	return m.peerRejected
}

// maxDrainFrames bounds the data frames drainFinal discards.
const maxDrainFrames = 16

// drainFinal reads up to the peer's final frame after a local rejection,
// discarding data frames the peer was still sending, so that closing the
// connection does not reset it before the peer has read the rejection. It is
// bounded by the connection deadline and by maxDrainFrames.
func (m *messenger) drainFinal() {
	for i := 0; i < maxDrainFrames && m.err == nil && m.peerFinal == 0; i++ {
		typ, payload, err := readFrame(m.rw, m.maxMsg)
		if err != nil {
			m.err = err
			return
		}
		switch typ {
		case frameData:
			continue
		case frameReject:
			m.peerRejected = &rejectedError{by: m.side, reason: sanitizeReason(string(payload))}
		}
		m.peerFinal = typ
	}
}
