package h2c

import (
	"errors"
	"io"
	"net"
	"sync"
)

// After an RFC 7540 §3.2 upgrade the server answers the upgrade request on
// stream 1, which the client must treat as already opened by it. grpc-go's
// client transport knows nothing of this and opens its first RPC on stream 1
// too. When Dialer meets a foreign server (one that does not echo the native
// marker on its 101), renumberConn sits between grpc-go and the wire and
// shifts every client-initiated stream ID by two:
//
//	client → server: odd ID n        → n+2
//	server → client: odd ID n ≥ 3    → n-2
//	                 ID 1            → phantomStream (an ID grpc-go never
//	                                   opens, so it decodes the headers, keeping
//	                                   HPACK state in step, and drops the rest)
//	                 GOAWAY last ID  → shifted the same way (1 → 0),
//	                                   but 2^31-1 (graceful shutdown) kept
//
// The shift is length-preserving, so frames stream through with only their
// 9-byte headers (and the first bytes of PRIORITY, prioritised HEADERS and
// GOAWAY payloads) held back until complete.

const (
	frameHeaderLen = 9
	phantomStream  = 1<<31 - 1

	frameHeaders  = 0x1
	framePriority = 0x2
	frameGoAway   = 0x7

	flagPadded   = 0x8
	flagPriority = 0x20
)

// frameRewriter rewrites the frame stream of one direction.
type frameRewriter struct {
	skip     int  // bytes still to pass unchanged (preface or payload tail)
	toServer bool // direction: client → server when true
}

// process rewrites the frames in b in place and returns how many leading bytes
// of b are final. The rest (a partial frame header or payload prefix) must be
// offered again, with more bytes after it, on the next call.
func (r *frameRewriter) process(b []byte) (int, error) {
	i := 0
	for i < len(b) {
		if r.skip > 0 {
			n := min(r.skip, len(b)-i)
			r.skip -= n
			i += n
			continue
		}
		if len(b)-i < frameHeaderLen {
			return i, nil
		}
		h := b[i : i+frameHeaderLen]
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		typ, flags := h[3], h[4]
		off, need := 0, 0 // offset and length of a stream ID in the payload
		switch {
		case typ == framePriority:
			need = 4
		case typ == frameHeaders && flags&flagPriority != 0:
			if flags&flagPadded != 0 {
				off = 1
			}
			need = 4
		case typ == frameGoAway:
			need = 4
		}
		if off+need > length {
			// Malformed; leave it for the peer's framer to reject.
			off, need = 0, 0
		}
		if len(b)-i < frameHeaderLen+off+need {
			return i, nil
		}
		if err := r.shift(h[5:9], false); err != nil {
			return i, err
		}
		if need > 0 {
			p := b[i+frameHeaderLen+off : i+frameHeaderLen+off+need]
			if err := r.shift(p, typ == frameGoAway); err != nil {
				return i, err
			}
		}
		i += frameHeaderLen + off + need
		r.skip = length - off - need
	}
	return i, nil
}

// shift renumbers the 31-bit stream ID in p[0:4], keeping the reserved or
// exclusive bit. A GOAWAY from the client names server-initiated streams and
// is left alone; one from the server maps 1 to 0 and keeps 2^31-1.
func (r *frameRewriter) shift(p []byte, goAway bool) error {
	top := p[0] & 0x80
	id := uint32(p[0]&0x7f)<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	if id%2 == 0 || (goAway && r.toServer) {
		return nil
	}
	switch {
	case r.toServer:
		if id > phantomStream-4 {
			return errors.New("h2c: stream ID space exhausted on an upgraded connection")
		}
		id += 2
	case id == phantomStream && goAway:
		// 2^31-1, the first GOAWAY of a graceful shutdown (grpc-go,
		// nghttp2): every stream, in either numbering.
		return nil
	case id == 1 && goAway:
		id = 0
	case id == 1:
		id = phantomStream
	case id == phantomStream:
		return errors.New("h2c: server used a stream ID reserved by the upgrade shim")
	default:
		id -= 2
	}
	p[0] = top | byte(id>>24)
	p[1], p[2], p[3] = byte(id>>16), byte(id>>8), byte(id)
	return nil
}

// renumberConn applies the stream ID shift described above to both
// directions of a connection to a foreign h2c server.
type renumberConn struct {
	net.Conn

	rmu   sync.Mutex
	rw    frameRewriter
	rbuf  []byte // [rpos:rdone] final bytes, [rdone:rend] bytes still held back
	rpos  int
	rdone int
	rend  int
	rerr  error

	wmu  sync.Mutex
	ww   frameRewriter
	wbuf []byte // bytes held back from the previous Write
	werr error
}

const renumberBufSize = 32 << 10

// newRenumberConn wraps c; prefix holds server bytes already read past the
// 101 response.
func newRenumberConn(c net.Conn, prefix []byte) (*renumberConn, error) {
	rc := &renumberConn{
		Conn: c,
		rbuf: make([]byte, max(renumberBufSize, len(prefix)+frameHeaderLen*2)),
		rw:   frameRewriter{},
		ww:   frameRewriter{toServer: true, skip: len(clientPreface)},
	}
	rc.rend = copy(rc.rbuf, prefix)
	n, err := rc.rw.process(rc.rbuf[:rc.rend])
	rc.rdone = n
	return rc, err
}

func (c *renumberConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for c.rpos == c.rdone {
		if c.rerr != nil {
			return 0, c.rerr
		}
		// Keep the held-back tail, then read more after it.
		c.rend = copy(c.rbuf, c.rbuf[c.rdone:c.rend])
		c.rpos, c.rdone = 0, 0
		n, err := c.Conn.Read(c.rbuf[c.rend:])
		c.rend += n
		d, perr := c.rw.process(c.rbuf[:c.rend])
		c.rdone = d
		switch {
		case perr != nil:
			c.rerr = perr
		case err == io.EOF && c.rdone < c.rend:
			c.rerr = io.ErrUnexpectedEOF
		case err != nil:
			c.rerr = err
		}
	}
	n := copy(p, c.rbuf[c.rpos:c.rdone])
	c.rpos += n
	return n, nil
}

func (c *renumberConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	// io.Writer must not modify p: rewrite a copy.
	b := append(c.wbuf, p...)
	d, err := c.ww.process(b)
	if err != nil {
		c.werr = err
		return 0, err
	}
	if d > 0 {
		if _, err := c.Conn.Write(b[:d]); err != nil {
			c.werr = err
			return 0, err
		}
	}
	c.wbuf = append(make([]byte, 0, 64), b[d:]...)
	return len(p), nil
}
