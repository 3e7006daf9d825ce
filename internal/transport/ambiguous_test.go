package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestAmbiguous(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for err, want := range map[error]bool{
		nil:                                false,
		fmt.Errorf("post: %w", dial):       false,
		&net.DNSError{Err: "no such host"}: false,
		fmt.Errorf("post: %w", read):       true,
		context.DeadlineExceeded:           true,
		errors.New("unexpected EOF"):       true,
	} {
		if got := Ambiguous(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
}
