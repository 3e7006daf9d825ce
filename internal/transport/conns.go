package transport

import (
	"net"
	"sync"
	"time"
)

// ConnSet is a server's open connections, so that a shutdown can wake
// each one's pending read (a read deadline of now): the connection then
// finishes what it has received and ends. A connection added after the
// wake-up, accepted as the listener closed, is woken at once. The zero
// value is ready.
type ConnSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
}

// Add counts c in; it reports the connections open now.
func (s *ConnSet) Add(c net.Conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	if s.closed {
		_ = c.SetReadDeadline(time.Now())
	}
	return len(s.conns)
}

// Remove counts c out.
func (s *ConnSet) Remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// WakeAll ends every pending read, now and for connections added later.
func (s *ConnSet) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
}
