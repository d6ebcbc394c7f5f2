package h2c

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func FuzzDecodeSettings(f *testing.F) {
	for _, s := range []string{"AAMAAABkAAQCAAAAAAIAAAAA", "AAIAAAAA", "", "AAIAAAAC", "AAMAAA", "AAMAAABkAA==", "!!!!", strings.Repeat("A", 1100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := decodeSettings(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "h2c: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if len(b) == 0 || len(b)%6 != 0 {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if got := base64.RawURLEncoding.EncodeToString(b); got != strings.TrimRight(s, "=") {
			t.Fatalf("accepted %q, which re-encodes as %q", s, got)
		}
	})
}

func FuzzReadUpgradeResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nGrpcutil-H2c: native\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.0 101 x\r\n\r\n",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, prefix, err := readUpgradeResponse(bytes.NewReader(data), 4096)
		if err != nil {
			return
		}
		if !bytes.HasSuffix(data, prefix) {
			t.Fatalf("prefix %q is not what followed the response in %q", prefix, data)
		}
	})
}

func FuzzCheckUpgrade(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c, websocket\r\n\r\n",
		"GET / HTTP/1.0\r\nUpgrade: h2c\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		settings, err := checkUpgrade(r)
		if err == nil && (len(settings) == 0 || len(settings)%6 != 0 || !hasToken(r.Header.Values("Connection"), "http2-settings")) {
			t.Fatalf("accepted a bad upgrade: %q", data)
		}
	})
}

// FuzzFrameRewriter checks that the stream ID shift never panics, preserves
// length, and gives the same bytes however the stream is cut into reads.
func FuzzFrameRewriter(f *testing.F) {
	frames := []byte(clientPreface +
		"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + // SETTINGS
		"\x00\x00\x05\x01\x24\x00\x00\x00\x01\x80\x00\x00\x03\x10" + // HEADERS+PRIORITY on 1
		"\x00\x00\x02\x00\x01\x00\x00\x00\x03hi" + // DATA on 3
		"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00" + // GOAWAY last=1
		"\x00\x00\x05\x02\x00\x00\x00\x00\x05\x00\x00\x00\x01\x10") // PRIORITY
	f.Add(frames, true, uint8(7))
	f.Add(frames[len(clientPreface):], false, uint8(1))
	f.Add([]byte("\x00\x00\x01\x01\x28\x7f\xff\xff\xff\x00"), false, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, toServer bool, cut uint8) {
		newRW := func() *frameRewriter {
			r := &frameRewriter{toServer: toServer}
			if toServer {
				r.skip = len(clientPreface)
			}
			return r
		}
		whole := bytes.Clone(data)
		d1, err1 := newRW().process(whole)
		if d1 < 0 || d1 > len(data) {
			t.Fatalf("process returned %d of %d", d1, len(data))
		}
		step := int(cut)%13 + 1
		r2 := newRW()
		var out, pending []byte
		var err2 error
		for i := 0; i < len(data) && err2 == nil; i += step {
			pending = append(pending, data[i:min(i+step, len(data))]...)
			var d int
			d, err2 = r2.process(pending)
			out = append(out, pending[:d]...)
			pending = pending[d:]
		}
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %v, in pieces of %d: %v", err1, step, err2)
		}
		if err1 == nil && (!bytes.Equal(out, whole[:d1]) || len(out)+len(pending) != len(data)) {
			t.Fatalf("pieces of %d give %x, whole gives %x", step, out, whole[:d1])
		}
	})
}

func TestFrameRewriterMapping(t *testing.T) {
	hdr := func(typ, flags byte, id uint32, payload ...byte) []byte {
		n := len(payload)
		b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
		return append(b, payload...)
	}
	for _, tc := range []struct {
		name     string
		toServer bool
		in, want []byte
		wantErr  string
	}{
		{"client DATA 1→3", true, hdr(0, 1, 1, 'x'), hdr(0, 1, 3, 'x'), ""},
		{"client WINDOW_UPDATE 0 unchanged", true, hdr(8, 0, 0, 0, 0, 1, 0), hdr(8, 0, 0, 0, 0, 1, 0), ""},
		{"client PRIORITY dep 1→3, E bit kept", true, hdr(2, 0, 5, 0x80, 0, 0, 1, 9), hdr(2, 0, 7, 0x80, 0, 0, 3, 9), ""},
		{"client padded prioritised HEADERS", true, hdr(1, 0x28, 1, 0, 0, 0, 0, 5, 1), hdr(1, 0x28, 3, 0, 0, 0, 0, 7, 1), ""},
		{"client GOAWAY names server streams", true, hdr(7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), hdr(7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), ""},
		{"client stream space exhausted", true, hdr(0, 0, phantomStream-2), nil, "h2c: stream ID space exhausted"},
		{"server HEADERS 3→1", false, hdr(1, 4, 3, 'h'), hdr(1, 4, 1, 'h'), ""},
		{"server stream 1→phantom", false, hdr(0, 1, 1), hdr(0, 1, phantomStream), ""},
		{"server even ID unchanged", false, hdr(5, 4, 2, 0, 0, 0, 4), hdr(5, 4, 2, 0, 0, 0, 4), ""},
		{"server GOAWAY 5→3", false, hdr(7, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0), hdr(7, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0), ""},
		{"server GOAWAY 2^31-1 (graceful notice) unchanged", false, hdr(7, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0), hdr(7, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0), ""},
		{"server GOAWAY 1→0", false, hdr(7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), hdr(7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), ""},
		{"server short GOAWAY left for the framer", false, hdr(7, 0, 0, 0, 1), hdr(7, 0, 0, 0, 1), ""},
		{"server uses phantom", false, hdr(0, 0, phantomStream), nil, "h2c: server used a stream ID reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &frameRewriter{toServer: tc.toServer}
			b := bytes.Clone(tc.in)
			n, err := r.process(b)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || n != len(b) || !bytes.Equal(b, tc.want) {
				t.Fatalf("process = %d, %v: %x, want %x", n, err, b, tc.want)
			}
		})
	}
}
