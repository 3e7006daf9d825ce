package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// TracerCount is the outcome of counting tracers at a sink.
type TracerCount struct {
	Expected, Seen, Missing, Duplicated int
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

// CountTracers reads the JSON-lines files matching glob and counts the
// "tracer" field against the ids expected.
func CountTracers(glob string, expected []string) (TracerCount, error) {
	seen, err := SeenIDs(glob, "tracer")
	if err != nil {
		return TracerCount{}, err
	}
	c := TracerCount{Expected: len(expected)}
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

// SeenIDs reads the JSON-lines files matching glob and counts how often
// each value of the string field appears.
func SeenIDs(glob, field string) (map[string]int, error) {
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				if id, ok := rec[field].(string); ok && id != "" {
					seen[id]++
				}
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return seen, nil
}
