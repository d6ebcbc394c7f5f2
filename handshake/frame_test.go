package handshake

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		maxMsg  int
		typ     byte
		payload string
		wantErr string
		is      error
	}{
		{name: "data", in: []byte{1, 0, 0, 0, 2, 'h', 'i'}, maxMsg: 10, typ: frameData, payload: "hi"},
		{name: "empty data", in: []byte{1, 0, 0, 0, 0}, maxMsg: 10, typ: frameData},
		{name: "data at limit", in: []byte{1, 0, 0, 0, 2, 'h', 'i'}, maxMsg: 2, typ: frameData, payload: "hi"},
		{name: "accept", in: []byte{2, 0, 0, 0, 0}, maxMsg: 10, typ: frameAccept},
		{name: "reject", in: []byte{3, 0, 0, 0, 2, 'n', 'o'}, maxMsg: 10, typ: frameReject, payload: "no"},
		{name: "data over limit", in: []byte{1, 0, 0, 0, 3, 'a', 'b', 'c'}, maxMsg: 2,
			wantErr: "handshake: frame of type 0x01 announces 3 bytes, over the limit of 2", is: errProtocol},
		{name: "4 GiB announced", in: []byte{1, 0xff, 0xff, 0xff, 0xff}, maxMsg: DefaultMaxMessageSize,
			wantErr: "handshake: frame of type 0x01 announces 4294967295 bytes, over the limit of 65536", is: errProtocol},
		{name: "accept with payload", in: []byte{2, 0, 0, 0, 1, 'x'}, maxMsg: 10,
			wantErr: "handshake: frame of type 0x02 announces 1 bytes, over the limit of 0", is: errProtocol},
		{name: "reject reason too long", in: []byte{3, 0, 0, 2, 1}, maxMsg: 10,
			wantErr: "handshake: frame of type 0x03 announces 513 bytes, over the limit of 512", is: errProtocol},
		{name: "unknown type", in: []byte("GET / HTTP/1.1\r\n"), maxMsg: 10,
			wantErr: "handshake: unknown frame type 0x47 (peer does not speak this protocol)", is: errProtocol},
		{name: "http2 preface", in: []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), maxMsg: 10,
			wantErr: "handshake: unknown frame type 0x50 (peer does not speak this protocol)", is: errProtocol},
		{name: "empty", in: nil, maxMsg: 10, wantErr: "handshake: reading frame header: EOF", is: io.EOF},
		{name: "truncated header", in: []byte{1, 0, 0}, maxMsg: 10,
			wantErr: "handshake: reading frame header: unexpected EOF", is: io.ErrUnexpectedEOF},
		{name: "truncated payload", in: []byte{1, 0, 0, 0, 4, 'a'}, maxMsg: 10,
			wantErr: "handshake: reading frame payload: unexpected EOF", is: io.ErrUnexpectedEOF},
		{name: "header only, payload missing", in: []byte{1, 0, 0, 0, 4}, maxMsg: 10,
			wantErr: "handshake: reading frame payload: unexpected EOF", is: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, payload, err := readFrame(bytes.NewReader(tt.in), tt.maxMsg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("readFrame() error = %v, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, tt.is) {
					t.Fatalf("readFrame() error = %v, want it to match %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("readFrame() error = %v", err)
			}
			if typ != tt.typ || string(payload) != tt.payload {
				t.Fatalf("readFrame() = %#x %q, want %#x %q", typ, payload, tt.typ, tt.payload)
			}
		})
	}
}

// TestReadFrameDoesNotReadAhead checks that exactly one frame is consumed:
// the bytes after it (gRPC's own, later) stay in the reader.
func TestReadFrameDoesNotReadAhead(t *testing.T) {
	r := bytes.NewReader(append(appendFrame(nil, frameAccept, nil), "PRI * HTTP/2.0"...))
	if _, _, err := readFrame(r, 10); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "PRI * HTTP/2.0" {
		t.Fatalf("left %q after the frame, want the HTTP/2 preface untouched", rest)
	}
}

// TestReadFrameOversizeAllocatesNothingBig checks that an announced 4 GiB
// frame is refused from its header alone.
func TestReadFrameOversizeAllocatesNothingBig(t *testing.T) {
	hdr := []byte{frameData, 0xff, 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, _, err := readFrame(bytes.NewReader(hdr), DefaultMaxMessageSize); !errors.Is(err, errProtocol) {
			t.Fatalf("readFrame() error = %v, want a protocol error", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("100 refused 4 GiB headers allocated %d bytes, want < 1 MiB", got)
	}
}

func TestSanitizeReason(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "account 42 is not allowed", "account 42 is not allowed"},
		{"empty", "", "no reason given"},
		{"control characters", "bad\nline\x1b[31m", "bad?line?[31m"},
		{"invalid utf-8", "a\xffb", "a?b"},
		{"too long", strings.Repeat("x", 600), strings.Repeat("x", maxReasonLen)},
		{"long multibyte", strings.Repeat("é", 400), strings.Repeat("é", maxReasonLen/2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitizeReason(tt.in); got != tt.want {
				t.Fatalf("sanitizeReason(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMessenger(t *testing.T) {
	var buf bytes.Buffer
	m := &messenger{rw: &buf, maxMsg: 4, side: "server"}
	if err := m.Send([]byte("12345")); err == nil || err.Error() != "handshake: message of 5 bytes exceeds the limit of 4" {
		t.Fatalf("Send(oversize) error = %v", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("Send(oversize) wrote %d bytes", buf.Len())
	}
	if err := m.Send([]byte("1234")); err != nil {
		t.Fatal(err)
	}
	got, err := m.Recv()
	if err != nil || string(got) != "1234" {
		t.Fatalf("Recv() = %q, %v", got, err)
	}

	// A reject read by Recv is remembered and not read again.
	buf.Write(appendFrame(nil, frameReject, []byte("nope")))
	if _, err := m.Recv(); !errors.Is(err, ErrRejected) || err.Error() != "handshake: rejected by server: nope" {
		t.Fatalf("Recv() error = %v, want the rejection", err)
	}
	if err := m.Send([]byte("x")); !errors.Is(err, ErrRejected) {
		t.Fatalf("Send() after rejection error = %v, want the rejection", err)
	}
	if err := m.awaitFinal(); !errors.Is(err, ErrRejected) {
		t.Fatalf("awaitFinal() = %v, want the rejection", err)
	}

	m.done.Store(true)
	if err := m.Send(nil); !errors.Is(err, errMessengerDone) {
		t.Fatalf("Send() after done error = %v", err)
	}
	if _, err := m.Recv(); !errors.Is(err, errMessengerDone) {
		t.Fatalf("Recv() after done error = %v", err)
	}
}

func TestMessengerPeerFinishedEarly(t *testing.T) {
	buf := bytes.NewBuffer(appendFrame(nil, frameAccept, nil))
	m := &messenger{rw: buf, maxMsg: 4, side: "client"}
	if _, err := m.Recv(); !errors.Is(err, errPeerFinished) {
		t.Fatalf("Recv() error = %v, want errPeerFinished", err)
	}
	if err := m.awaitFinal(); err != nil {
		t.Fatalf("awaitFinal() after accept = %v", err)
	}
}

func TestMessengerUnreadData(t *testing.T) {
	buf := bytes.NewBuffer(appendFrame(nil, frameData, []byte("x")))
	m := &messenger{rw: buf, maxMsg: 4, side: "client"}
	err := m.awaitFinal()
	if !errors.Is(err, errProtocol) || err.Error() != "handshake: client sent a message the local function did not read" {
		t.Fatalf("awaitFinal() = %v", err)
	}
}

// FuzzReadFrame checks that readFrame never panics, honors the limits, and
// that what it accepts re-encodes to exactly the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 2, 'h', 'i'}, uint16(16))
	f.Add([]byte{2, 0, 0, 0, 0}, uint16(0))
	f.Add([]byte{3, 0, 0, 0, 3, 'b', '\n', 0xff}, uint16(16))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff}, uint16(65535))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), uint16(16))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		maxMsg := int(max)
		r := bytes.NewReader(in)
		typ, payload, err := readFrame(r, maxMsg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "handshake: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		limit, lerr := frameLimit(typ, maxMsg)
		if lerr != nil || len(payload) > limit {
			t.Fatalf("accepted type %#x with %d bytes (limit %d, %v)", typ, len(payload), limit, lerr)
		}
		consumed := len(in) - r.Len()
		if enc := appendFrame(nil, typ, payload); !bytes.Equal(enc, in[:consumed]) {
			t.Fatalf("re-encoded %x, consumed %x", enc, in[:consumed])
		}
		if typ == frameReject {
			s := sanitizeReason(string(payload))
			if !utf8.ValidString(s) || len(s) > maxReasonLen || s == "" {
				t.Fatalf("sanitized reason %q is not clean", s)
			}
		}
	})
}

// FuzzServerHandshake feeds arbitrary client bytes to a server handshake
// (insecure inner, an echoing ServerFunc) over an in-memory pipe: it must end
// within its timeout with a handshake: error or a success, never panic.
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 2, 'h', 'i', 2, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 2, 'h', 'i', 3, 0, 0, 0, 2, 'n', 'o'})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0, 0, 0, 0})
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	creds := Wrap(insecure.NewCredentials(), Funcs{
		Server: func(_ context.Context, m Messenger, _ credentials.AuthInfo) (any, error) {
			msg, err := m.Recv()
			if err != nil {
				return nil, err
			}
			return nil, m.Send(msg)
		},
	}, WithTimeout(50*time.Millisecond), WithMaxMessageSize(64))
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		defer client.Close()
		done := make(chan struct{})
		go func() { // the client: write the input, read whatever comes back
			defer close(done)
			go func() { _, _ = client.Write(in) }()
			_, _ = io.Copy(io.Discard, client)
		}()
		conn, ai, err := creds.ServerHandshake(server)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "handshake: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			if conn != nil || ai != nil {
				t.Fatal("conn or AuthInfo returned with an error")
			}
		} else {
			_ = conn.Close()
		}
		client.Close()
		<-done
	})
}
