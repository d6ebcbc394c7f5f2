package h2c

import (
	"bufio"
	"net"
	"sync"
)

// prefixConn is a net.Conn whose Read first returns bytes that were already
// read from the connection (by a bufio.Reader) before it was handed on.
type prefixConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

// withPrefix returns c itself when prefix is empty (so the native transport
// keeps the bare *net.TCPConn) and a prefixConn otherwise. prefix is copied.
func withPrefix(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	return &prefixConn{Conn: c, buf: append([]byte(nil), prefix...)}
}

// buffered returns a copy of the bytes br holds unread.
func buffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n) // cannot fail: n bytes are buffered
	return append([]byte(nil), b...)
}

func (c *prefixConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// NetConn returns the wrapped connection, as crypto/tls.Conn does.
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

// handoffListener is a net.Listener fed by Server rather than by the network:
// Server accepts, sniffs and upgrades connections itself and hands the ones
// meant for grpc-go's native transport (or for net/http's HTTP/1.1 server) to
// Serve through this listener.
type handoffListener struct {
	addr      net.Addr
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newHandoffListener(name string) *handoffListener {
	return &handoffListener{
		addr: handoffAddr(name),
		ch:   make(chan net.Conn),
		done: make(chan struct{}),
	}
}

// Accept waits for the next handed-off connection.
func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept. Connections already handed off are not affected.
func (l *handoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr names the listener; it is not a network address.
func (l *handoffListener) Addr() net.Addr { return l.addr }

// handoff passes c to whoever calls Accept. It fails, without closing c, when
// the listener is closed (for a gRPC server: after Stop) or stop fires.
func (l *handoffListener) handoff(c net.Conn, stop <-chan struct{}) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.done:
		return errorf("%s listener is closed", l.addr)
	case <-stop:
		return ErrServerClosed
	}
}

type handoffAddr string

func (a handoffAddr) Network() string { return "h2c" }
func (a handoffAddr) String() string  { return string(a) }
