package event

import (
	"bytes"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// plainPrefixLoop is the definition the scans must agree with.
func plainPrefixLoop(s []byte) int {
	for i, c := range s {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return i
		}
	}
	return len(s)
}

// careBytes are the edges of each class of byte that needs care, and
// plainBytes those of the bytes that need none.
var (
	careBytes  = []byte{0x00, 0x1f, '"', '\\', 0x80, 0xc3, 0xff}
	plainBytes = []byte{0x20, '!', '#', '[', ']', 'a', 0x7f}
)

// TestPlainPrefix puts each byte that needs care at every position of
// strings of every length up to 130 (past two of the widest steps), alone
// and before a second one, and checks both scans against the plain loop.
func TestPlainPrefix(t *testing.T) {
	scans := map[string]func([]byte) int{"plainPrefixWords": plainPrefixWords,
		"copyPlain": func(s []byte) int { return checkCopyPlain(t, s) }}
	buf := make([]byte, 130)
	for n := 0; n <= len(buf); n++ {
		for _, p := range plainBytes {
			s := buf[:n]
			for i := range s {
				s[i] = p
			}
			for name, scan := range scans {
				if got := scan(s); got != n {
					t.Fatalf("%s of %d plain %#x bytes = %d", name, n, p, got)
				}
			}
			for i := 0; i < n; i++ {
				for _, c := range careBytes {
					s[i] = c
					for name, scan := range scans {
						if got := scan(s); got != i {
							t.Fatalf("%s: %#x at %d of %d: got %d", name, c, i, n, got)
						}
					}
					if i+1 < n {
						s[n-1] = '"'
						for name, scan := range scans {
							if got := scan(s); got != i {
								t.Fatalf("%s: %#x at %d of %d, quote at the end: got %d", name, c, i, n, got)
							}
						}
						s[n-1] = p
					}
					s[i] = p
				}
			}
		}
	}
}

// checkCopyPlain runs copyPlain on s and checks what it copied. It returns
// the plain prefix's length when copyPlain stopped early, which it may do
// only at 0, for a short string at the end of a page.
func checkCopyPlain(t *testing.T, s []byte) int {
	t.Helper()
	dst := make([]byte, len(s)+plainSlack)
	n := copyPlain(dst, s)
	if want := plainPrefixLoop(s); n != want {
		if n != 0 || len(s) >= 16 || uintptr(unsafe.Pointer(unsafe.SliceData(s)))%4096 <= 4096-16 {
			t.Fatalf("copyPlain(%q) = %d, want %d", s, n, want)
		}
		n = want
		copy(dst, s[:n])
	}
	if !bytes.Equal(dst[:n], s[:n]) {
		t.Fatalf("copyPlain(%q) copied %q", s, dst[:n])
	}
	return n
}

// guardedPage returns a page of memory between two that cannot be read,
// its capacity ending with it: a read outside it faults. The test unmaps
// it when it ends.
func guardedPage(t *testing.T) []byte {
	t.Helper()
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 3*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip("mmap:", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[:page], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mprotect(mem[2*page:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return mem[page : 2*page : 2*page]
}

// TestPlainPrefixPageEdges places strings against pages that cannot be
// read, on either side: a scan that reads a byte outside s there faults.
func TestPlainPrefixPageEdges(t *testing.T) {
	usable := guardedPage(t)
	page := len(usable)
	for i := range usable {
		usable[i] = 'a'
	}
	for n := 0; n <= 70; n++ {
		for _, s := range [][]byte{usable[:n], usable[page-n:]} {
			if got := checkCopyPlain(t, s); got != n {
				t.Fatalf("copyPlain of %d plain bytes at a page edge: got %d", n, got)
			}
			if got, want := string(AppendJSONString(nil, s)), `"`+string(s)+`"`; got != want {
				t.Fatalf("AppendJSONString at a page edge: got %s, want %s", got, want)
			}
			for i := 0; i < n; i++ {
				s[i] = '\\'
				if got := checkCopyPlain(t, s); got != i {
					t.Fatalf("copyPlain: backslash at %d of %d at a page edge: got %d", i, n, got)
				}
				if got, want := string(AppendJSONString(nil, s)), `"`+string(s[:i])+`\\`+string(s[i+1:])+`"`; got != want {
					t.Fatalf("AppendJSONString at a page edge: got %s, want %s", got, want)
				}
				s[i] = 'a'
			}
		}
	}
}

// TestPlainPrefixRandom checks random text with sparse bytes needing care,
// at random offsets from an aligned start.
func TestPlainPrefixRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 600)
	for range 200000 {
		s := buf[r.IntN(64):]
		s = s[:r.IntN(len(s)+1)]
		for i := range s {
			s[i] = byte(0x20 + r.IntN(0x5f))
			if r.IntN(100) == 0 {
				s[i] = byte(r.IntN(256))
			}
		}
		if got, want := checkCopyPlain(t, s), plainPrefixLoop(s); got != want {
			t.Fatalf("%q: got %d, want %d", s, got, want)
		}
	}
}

func FuzzPlainPrefix(f *testing.F) {
	f.Add([]byte(`122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`))
	f.Add([]byte("tab\tin the middle of more than thirty-two bytes of text"))
	f.Fuzz(func(t *testing.T, s []byte) {
		if got, want := plainPrefixWords(s), plainPrefixLoop(s); got != want {
			t.Fatalf("plainPrefixWords = %d, want %d", got, want)
		}
		checkCopyPlain(t, s)
		checkJSONString(t, s)
	})
}
