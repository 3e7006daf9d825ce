package tail

import (
	"bytes"
	"testing"
)

// FuzzPosLine: any line of a pos_file (another program may have written
// it) is read or refused without a panic, and what is read writes back
// as the same line.
func FuzzPosLine(f *testing.F) {
	f.Add("/var/log/a.log\t0000000000000046\t0000000000984373")
	f.Add("/var/log/b\tlog\tffffffffffffffff\t0000000000000001")
	f.Add("\t\t")
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := parsePosLine(line)
		if !ok || e.pos < 0 {
			return
		}
		if got := string(appendPosLine(nil, e)); got != line+"\n" && !bytes.EqualFold([]byte(got), []byte(line+"\n")) {
			t.Fatalf("%q read as %+v, written back as %q", line, e, got)
		}
	})
}

// FuzzSplitCRI: any line is cut or refused without a panic; a cut line's
// parts are where the format puts them.
func FuzzSplitCRI(f *testing.F) {
	f.Add([]byte("2026-12-06T10:00:00Z stdout P part"))
	f.Add([]byte("t s F"))
	f.Add([]byte("a b PP c"))
	f.Fuzz(func(t *testing.T, line []byte) {
		flagAt, stream, msg, partial, ok := splitCRI(line)
		if !ok {
			return
		}
		if flagAt <= 0 || flagAt >= len(line) || line[flagAt-1] != ' ' || partial != (line[flagAt] == 'P') {
			t.Fatalf("%q: flag at %d", line, flagAt)
		}
		if !bytes.Contains(line, stream) || (len(msg) > 0 && !bytes.HasSuffix(line, msg)) {
			t.Fatalf("%q: stream %q message %q", line, stream, msg)
		}
	})
}
