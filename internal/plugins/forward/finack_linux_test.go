package forward

import (
	"net"
	"testing"
	"time"
)

// finAcked turns true once the peer's kernel has acknowledged our FIN, and
// not before: graceful closes end on it instead of waiting lingerDrain.
func TestFinAcked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server := nc.(*net.TCPConn)
	defer server.Close()
	if finAcked(server) {
		t.Fatal("finAcked on an open connection")
	}
	if err := server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !finAcked(server) {
		if time.Now().After(deadline) {
			t.Fatal("the peer's acknowledgement of our FIN never showed")
		}
		time.Sleep(time.Millisecond)
	}
	// The client can still send: the server side only stopped writing.
	if _, err := client.Write([]byte("late")); err != nil {
		t.Fatalf("write to a half-closed connection: %v", err)
	}
	buf := make([]byte, 8)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
}
