package forward

import (
	"net"

	"golang.org/x/sys/unix"
)

// finAcked reports whether the peer has acknowledged everything sent on a
// half-closed connection, our FIN included: from then on a reset can no
// longer discard data the peer has not received.
func finAcked(tcp *net.TCPConn) bool {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	acked := false
	_ = raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return
		}
		switch info.State {
		case unix.BPF_TCP_FIN_WAIT2, unix.BPF_TCP_TIME_WAIT, unix.BPF_TCP_CLOSE:
			acked = true
		}
	})
	return acked
}
