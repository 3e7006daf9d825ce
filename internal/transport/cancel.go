package transport

import (
	"context"
	"net"
	"time"
)

// aLongTimeAgo is a deadline in the past: I/O under it fails at once.
var aLongTimeAgo = time.Unix(1, 0)

// CancelIO makes every Read and Write on conn return once ctx is done,
// whatever deadlines conn has: blocking socket I/O does not watch a
// context by itself. Call stop when the I/O under ctx is over. Once ctx
// has fired, conn's deadlines are spent: close it.
func CancelIO(ctx context.Context, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
}
