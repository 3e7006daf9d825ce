package transport

import (
	"context"
	"net"
	"time"
)

// lookupTimeout bounds one reverse lookup: a slow resolver delays the
// connection (or datagram) it is for, never the whole input.
const lookupTimeout = 2 * time.Second

// LookupHostname is a peer's name by reverse DNS, for the inputs'
// source_hostname_key; the address itself when it has none (as Fluentd's
// resolve_hostname gives), "" for no address.
func LookupHostname(ctx context.Context, ip net.IP) string {
	if ip == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, ip.String())
	if err != nil || len(names) == 0 {
		return ip.String()
	}
	name := names[0]
	if len(name) > 1 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	return name
}
