package transport

import (
	"crypto/tls"
	"errors"
	"net"
)

// Ambiguous reports whether a request that failed with err may still have
// been taken by the server: the connection was made, the request may have
// gone out, and no answer says what became of it (a timeout, a reset, a
// broken read). A retry after such a failure can deliver twice; outputs
// count those records so that operators see the at-least-once window.
// Failures before anything was sent (dialling, name resolution, the TLS
// handshake) are not ambiguous.
func Ambiguous(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return false
	}
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &rh) || errors.As(err, &cv) {
		return false
	}
	return true
}
