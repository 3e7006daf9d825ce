package strftime

import (
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	tz := time.FixedZone("JST", 9*3600)
	at := time.Date(2013, 2, 28, 12, 3, 4, 56789012, tz)
	cases := map[string]string{
		"%Y-%m-%dT%H:%M:%S%:z":   "2013-02-28T12:03:04+09:00",
		"%Y-%m-%d %H:%M:%S %z":   "2013-02-28 12:03:04 +0900",
		"%Y%m%d%H":               "2013022812",
		"%L %N %3N %6N":          "056 056789012 056 056789",
		"%a %b %e %I%p %j %y %%": "Thu Feb 28 12PM 059 13 %",
		"%s":                     "1362020584",
		"literal %Q":             "literal %Q",
		"%F %T":                  "2013-02-28 12:03:04",
	}
	for layout, want := range cases {
		if got := Format(layout, at); got != want {
			t.Errorf("Format(%q) = %q, want %q", layout, got, want)
		}
	}
	neg := time.Date(2020, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(3*3600+30*60)))
	if got := Format("%z %:z", neg); got != "-0330 -03:30" {
		t.Errorf("negative zone = %q", got)
	}
}

func TestHasTimeDirective(t *testing.T) {
	for s, want := range map[string]bool{"/a/%Y": true, "/a/b": false, "100%%": false, "%%%H": true} {
		if HasTimeDirective(s) != want {
			t.Errorf("HasTimeDirective(%q) != %v", s, want)
		}
	}
}
