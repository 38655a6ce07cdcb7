package endpoint

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// limitListener accepts at most max open connections, and at most
// perClient from one client (as key names it), and closes any beyond at
// once (golang.org/x/net/netutil.LimitListener queues them instead,
// holding their descriptors, and counts no client apart).
type limitListener struct {
	net.Listener
	max, perClient int
	key            func(net.Conn) string

	mu     sync.Mutex
	open   int
	byKey  map[string]int
	refuse uint64 // connections closed at once, for tests
}

func newLimitListener(ln net.Listener, max, perClient int, key func(net.Conn) string) *limitListener {
	return &limitListener{Listener: ln, max: max, perClient: perClient, key: key, byKey: make(map[string]int)}
}

// Accept returns the next connection within the caps. A temporary accept
// error (EMFILE) is paced rather than ending the server.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return nil, err
		}
		k := ""
		if l.key != nil {
			k = l.key(c)
		}
		if !l.take(k) {
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l, key: k}, nil
	}
}

// take reserves a slot for a client keyed k, if both caps allow.
func (l *limitListener) take(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max || l.byKey[k] >= l.perClient {
		l.refuse++
		return false
	}
	l.open++
	l.byKey[k]++
	return true
}

func (l *limitListener) release(k string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byKey[k]--; l.byKey[k] <= 0 {
		delete(l.byKey, k)
	}
}

// counts returns the open connections, those of client k, and those
// refused so far.
func (l *limitListener) counts(k string) (open, client int, refused uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.byKey[k], l.refuse
}

// limitConn gives its slot back once, on its first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	key  string
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
