package localstack

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// forwarder holds a gateway's stable loopback address, the stand-in for its
// Service, and relays each TCP connection to the gateway process that is
// current when the connection arrives. A restarted gateway (new config,
// crash) gets fresh ports; switching the forwarder to it keeps the URL that
// clients, and the tokens they hold (whose audience is that URL), use.
// Connections already open stay with the old process until it drains, as
// they would with a Service during a rolling update.
type forwarder struct {
	ln net.Listener

	mu      sync.Mutex
	backend string // host:port of the current process; "" refuses connections
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// newForwarder listens on a free loopback port.
func newForwarder() (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// addr is the stable host:port.
func (f *forwarder) addr() string { return f.ln.Addr().String() }

// setBackend sends new connections to addr ("" refuses them).
func (f *forwarder) setBackend(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = addr
}

// clearBackend refuses new connections if addr is still the backend.
func (f *forwarder) clearBackend(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.backend == addr {
		f.backend = ""
	}
}

// close stops listening, cuts every relayed connection and waits for the
// relays to end.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	_ = f.ln.Close()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.mu.Lock()
		backend := f.backend
		if f.closed || backend == "" {
			f.mu.Unlock()
			_ = c.Close() // no ready gateway: like a Service without endpoints
			continue
		}
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go f.relay(c, backend)
	}
}

// relay copies between the client and the backend until both directions
// are done, passing half-closes on.
func (f *forwarder) relay(client net.Conn, backend string) {
	defer f.wg.Done()
	defer f.forget(client)
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	f.conns[server] = struct{}{}
	f.mu.Unlock()
	defer f.forget(server)

	var both sync.WaitGroup
	both.Add(2)
	pipe := func(dst, src net.Conn) {
		defer both.Done()
		_, _ = io.Copy(dst, src)
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go pipe(server, client)
	go pipe(client, server)
	both.Wait()
	_ = client.Close()
	_ = server.Close()
}

func (f *forwarder) forget(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}
