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

// TestParse reads times as Ruby's strptime does for the layouts Fluentd
// configurations use.
func TestParse(t *testing.T) {
	utc := time.UTC
	for _, tc := range []struct {
		layout, value string
		want          time.Time
	}{
		{"%Y-%m-%dT%H:%M:%S%z", "2026-12-03T09:57:00+0900", time.Date(2026, 12, 3, 0, 57, 0, 0, utc)},
		{"%Y%m%dT%H%M%S.%L%z", "20261203T095700.123+0000", time.Date(2026, 12, 3, 9, 57, 0, 123e6, utc)},
		{"%Y%m%d", "20261203", time.Date(2026, 12, 3, 0, 0, 0, 0, utc)},
		{"%d/%b/%Y:%H:%M:%S %z", "03/Dec/2026:09:57:00 +0000", time.Date(2026, 12, 3, 9, 57, 0, 0, utc)},
		{"%Y-%m-%d %H:%M:%S.%N", "2026-12-03 09:57:00.5", time.Date(2026, 12, 3, 9, 57, 0, 5e8, utc)},
	} {
		got, err := Parse(tc.layout, tc.value, utc)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("Parse(%q, %q) = %v, %v; want %v", tc.layout, tc.value, got, err, tc.want)
		}
	}
	if _, err := Parse("%Y-%m-%d", "2026-13-40", utc); err == nil {
		t.Error("month 13 accepted")
	}
}

// FuzzParse: any layout and value give a time or an error, never a panic
// or a hang.
func FuzzParse(f *testing.F) {
	for _, seed := range [][2]string{{"%Y-%m-%dT%H:%M:%S%z", "2026-12-03T09:57:00+0900"}, {"%Y%m%d%H", "2026120309"},
		{"%d/%b/%Y:%H:%M:%S %z", "03/Dec/2026:09:57:00 +0000"}, {"%s.%N", "1700000000.123"}, {"%b %e %H:%M:%S", "Mar  1 01:02:03"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, layout, value string) {
		_, _ = Parse(layout, value, time.UTC)
	})
}
