package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tinylib/msgp/msgp"
)

// TracerCount is the outcome of counting tracers at a sink. Records counts
// every record read, tracer or not.
type TracerCount struct {
	Expected, Seen, Missing, Duplicated int
	Records                             int
}

// ExpectedTracers lists the tracer ids a run of cfg sends.
func ExpectedTracers(cfg SendConfig) []string {
	if cfg.TracerEvery <= 0 {
		return nil
	}
	conns := max(cfg.Conns, 1)
	perConn := cfg.Events / int64(conns)
	var out []string
	for c := 0; c < conns; c++ {
		for seq := int64(0); seq < perConn; seq += int64(cfg.TracerEvery) {
			out = append(out, cfg.TracerRun+"-"+strconv.Itoa(c)+"-"+strconv.FormatInt(seq, 10))
		}
	}
	return out
}

// CountTracers reads the files matching glob (JSON lines, or the msgpack
// formatter's concatenated maps) and counts the "tracer" field against the
// ids expected.
func CountTracers(glob string, expected []string) (TracerCount, error) {
	seen, records, err := readIDs(glob, "tracer")
	if err != nil {
		return TracerCount{}, err
	}
	c := TracerCount{Expected: len(expected), Records: records}
	for _, id := range expected {
		switch n := seen[id]; {
		case n == 0:
			c.Missing++
		default:
			c.Seen++
			if n > 1 {
				c.Duplicated++
			}
		}
	}
	return c, nil
}

// SeenIDs reads the files matching glob and counts how often each value
// of the string field appears.
func SeenIDs(glob, field string) (map[string]int, error) {
	seen, _, err := readIDs(glob, field)
	return seen, err
}

func readIDs(glob, field string) (map[string]int, int, error) {
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, 0, err
	}
	seen := map[string]int{}
	records := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, 0, err
		}
		r := bufio.NewReaderSize(fh, 1<<20)
		if first, _ := r.Peek(1); len(first) == 1 && first[0] != '{' {
			err = readMsgpackIDs(r, field, seen, &records)
		} else {
			err = readJSONIDs(r, field, seen, &records)
		}
		fh.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", f, err)
		}
	}
	return seen, records, nil
}

func readJSONIDs(r io.Reader, field string, seen map[string]int, records *int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			*records++
			if id, ok := rec[field].(string); ok && id != "" {
				seen[id]++
			}
		}
	}
	return sc.Err()
}

func readMsgpackIDs(r io.Reader, field string, seen map[string]int, records *int) error {
	mr := msgp.NewReader(r)
	for {
		raw, err := mr.ReadMapHeader()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		*records++
		for ; raw > 0; raw-- {
			k, err := mr.ReadString()
			if err != nil {
				return err
			}
			if t, _ := mr.NextType(); k == field && t == msgp.StrType {
				v, err := mr.ReadString()
				if err != nil {
					return err
				}
				seen[v]++
				continue
			}
			if err := mr.Skip(); err != nil {
				return err
			}
		}
	}
}
