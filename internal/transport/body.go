package transport

import (
	"bytes"
	"sync"
	"time"
)

// TrackedBody is an HTTP request body that tells when the transport has
// closed it, so that the caller may write into its buffer again: Go's
// transport may go on reading a request body after the answer has come
// (a server that answers before reading all of it).
type TrackedBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

// NewTrackedBody returns a body reading b.
func NewTrackedBody(b []byte) *TrackedBody {
	return &TrackedBody{Reader: bytes.NewReader(b), closed: make(chan struct{})}
}

// Close implements io.Closer.
func (b *TrackedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// Released reports whether the body was closed, waiting up to d.
func (b *TrackedBody) Released(d time.Duration) bool {
	select {
	case <-b.closed:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.closed:
		return true
	case <-t.C:
		return false
	}
}
